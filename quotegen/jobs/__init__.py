"""``quotegen batch``'s jobs: a prompts file in, a results file out, resumable, here or on a
Ray cluster.

Input (``read_jobs``): ``.txt`` (a prompt per line), ``.jsonl`` (``{"prompt", "settings"?,
"custom_id"?}`` lines, or OpenAI batch-API request lines for ``/v1/completions``) or
``.parquet`` (a ``prompt`` column, ``custom_id`` optional). Output (``ResultsFile``): ``.jsonl``
(the rows of ``generate --json`` with ``custom_id``, or OpenAI batch-output lines for OpenAI
input) or ``.parquet`` (written from a JSON Lines journal once the job is complete).

Nothing is lost and nothing is done twice:

- the job's lines are cut into fixed chunks of ``batch_size`` lines; a chunk is always
  generated as one batch, so every row's numbers (and, with its seed, its sample) are the same
  however the run is split, resumed or spread over replicas;
- each line's rows get seeds from the run's seed and the line's index (``prepare``'s
  ``start_index``), never from scheduling;
- results are appended in input order, each line's rows in one flushed write; a killed run
  leaves a prefix of complete lines (a torn or partial tail is cut off when it resumes);
- a manifest beside the output (``OUTPUT.batch.json``) records what made it (input digest,
  model, settings, chunk size); resuming with anything else is refused.

The package: ``files`` (the input formats, the results file and its manifest), ``chunks``
(one chunk generated as one batch, its output rows) and ``runner`` (a whole job: resume,
the chunks still to do, here or on Ray, progress).
"""
