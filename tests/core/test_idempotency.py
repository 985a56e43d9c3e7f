from chat.core.idempotency import IdempotencyWindow, Sent


def test_a_ref_is_remembered_for_the_window():
    window = IdempotencyWindow(window_s=600)
    window.put("s1", "r1", Sent("lobby", 7, at=1000.0))
    assert window.get("s1", "r1", 1599.0) == Sent("lobby", 7, 1000.0)
    assert window.get("s2", "r1", 1599.0) is None  # refs are per session


def test_a_ref_is_forgotten_after_the_window():
    window = IdempotencyWindow(window_s=600)
    window.put("s1", "r1", Sent("lobby", 7, at=1000.0))
    assert window.get("s1", "r1", 1600.0) is None
    assert len(window) == 0


def test_the_window_is_bounded():
    window = IdempotencyWindow(window_s=600, max_entries=3)
    for i in range(5):
        window.put("s", f"r{i}", Sent("lobby", i, at=0.0))
    assert len(window) == 3
    assert window.get("s", "r0", 0.0) is None
    assert window.get("s", "r4", 0.0) is not None
