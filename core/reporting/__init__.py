"""Reports: the typed run report and its key names (schema, report), reading ours and ByteMLPerf's
(report_io), the shared table model (tables), comparisons (comparison, compare), the leaderboard
(summary) and the HTML pages (html_report)."""
