import pytest

from tests.factories import UserFactory


@pytest.fixture
def users(db):
    """Two users who can act in, or be the subject of, audit entries."""
    return [UserFactory(), UserFactory()]
