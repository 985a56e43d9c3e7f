from chat.core.names import RESERVATION_S, NameRegistry


def test_a_session_may_open_many_connections_under_its_name():
    names = NameRegistry()
    assert names.acquire("bob", "s1", 0)
    assert names.acquire("bob", "s1", 0)


def test_another_session_cannot_take_a_held_name_in_any_case():
    names = NameRegistry()
    assert names.acquire("bob", "s1", 0)
    assert not names.acquire("Bob", "s2", 0)
    assert not names.reserve("BOB", "s2", 0)


def test_the_name_stays_reserved_after_the_last_connection_closes():
    names = NameRegistry()
    names.acquire("bob", "s1", 0)
    names.acquire("bob", "s1", 0)
    names.release("bob", "s1", 1)
    assert not names.acquire("bob", "s2", 2)  # one connection is still open
    names.release("bob", "s1", 3)
    assert not names.acquire("bob", "s2", 3 + RESERVATION_S - 1)
    assert names.acquire("bob", "s1", 3 + RESERVATION_S - 1)  # the owner gets it back


def test_the_reservation_expires():
    names = NameRegistry()
    names.acquire("bob", "s1", 0)
    names.release("bob", "s1", 0)
    assert names.acquire("bob", "s2", RESERVATION_S)


def test_a_login_reserves_the_name_for_its_socket():
    names = NameRegistry()
    assert names.reserve("bob", "s1", 0)
    assert not names.acquire("bob", "s2", 1)
    assert names.acquire("bob", "s1", 1)
    assert names.available("bob", "s1", 2)
    assert not names.available("bob", "s2", 2)


def test_logout_frees_an_unused_name_at_once():
    names = NameRegistry()
    names.reserve("bob", "s1", 0)
    names.drop("bob", "s1")
    assert names.acquire("bob", "s2", 0)


def test_sweep_forgets_expired_reservations():
    names = NameRegistry()
    for i in range(100):
        names.acquire(f"u{i}", "s", 0)
        names.release(f"u{i}", "s", 0)
    names.sweep(RESERVATION_S + 1)
    assert names._holds == {}
