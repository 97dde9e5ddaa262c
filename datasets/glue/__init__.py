"""GLUE: the eight tasks' dev files, one reader, the official metrics, the evaluator; each task's dataset
package (open_cola, open_sst2, open_mrpc, open_stsb, open_qqp, open_qnli, open_rte; MNLI is open_mnli)
uses this loader."""
