"""Reports: the typed run report and its key names (schema, sections, report), reading ours and
ByteMLPerf's (report_io), writing (writer), the shared table model (tables), comparisons (comparison,
compare), the leaderboard and dashboard (leaderboard, summary, dashboard) and the HTML pages (html_report)."""
