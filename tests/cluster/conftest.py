"""Fixtures shared by the cluster tests."""

# The access matrix's servers, accounts and private room: the event tests use them too.
from tests.cluster.test_access import chat as chat
