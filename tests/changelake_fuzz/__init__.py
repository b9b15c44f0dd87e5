"""Fuzzing of changelake's input-facing code (issue 17 part 2, docs/adr/0037).

One set of *targets* (:mod:`changelake_fuzz.targets`): each takes the bytes an attacker or a
broken producer controls and checks the properties every input must keep — no exception
escapes except the typed, documented error with a reason; a valid input round-trips. Two
engines drive the same targets:

* hypothesis (:mod:`changelake_fuzz.properties`): structured inputs (real-shaped records,
  Firehose events, S3 notifications) and their mutations; shrinks a failure to a minimal case;
* atheris (:mod:`changelake_fuzz.coverage`): coverage-guided byte mutation (libFuzzer), seeded
  with the golden fixtures, with a JSON token dictionary.

``python -m changelake_fuzz`` (``make fuzz``) runs both for a given number of inputs and prints
the totals; tests/fuzz/ runs a short version of both in CI.
"""
