"""A cheap password hasher for the test IdP.

Django's default PBKDF2 costs ~1M iterations (about half a second of CPU). DOT hashes
client secrets with the default hasher too, so every client authentication would pay
that: far too slow for concurrency tests and benchmarks on two cores. Still a real
salted PBKDF2 hash, just with few iterations.
"""

from django.contrib.auth.hashers import PBKDF2PasswordHasher


class FastPBKDF2PasswordHasher(PBKDF2PasswordHasher):
    algorithm = "pbkdf2_sha256_fast"
    iterations = 1000
