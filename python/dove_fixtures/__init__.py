"""Seeded test fixtures, written by scripts/setup into test/fixtures/generated (python -m dove_fixtures).

Test support, not part of the model package `dove`: one module per test area, each with a
`generate(out_dir)`, listed in AREAS (__main__.py). Test areas read what they write; python/tests
imports some of their helpers (eval's reference networks).
"""
