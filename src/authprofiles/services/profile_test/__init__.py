"""The profile test (seed 000 "Test the Auth Profile"): the use case (``run``), its API
shapes (``results``) and what each answer means (``verdicts``). Redaction and the body
encoders are pure and live in the core; the recording HTTP client is an adapter in
``oauth.recording``."""

from authprofiles.services.profile_test.results import (
    CapturedRequest,
    CapturedResponse,
    ProfileTestRedirect,
    ProfileTestRequest,
    ProfileTestResult,
    ProfileTestStep,
)
from authprofiles.services.profile_test.run import EngineFactory, ProfileTestService, stages_for

__all__ = [
    "CapturedRequest",
    "CapturedResponse",
    "EngineFactory",
    "ProfileTestRedirect",
    "ProfileTestRequest",
    "ProfileTestResult",
    "ProfileTestService",
    "ProfileTestStep",
    "stages_for",
]
