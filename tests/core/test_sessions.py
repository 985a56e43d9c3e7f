from chat.core.sessions import SessionSigner


def test_a_token_verifies_to_its_session():
    signer = SessionSigner(b"secret")
    session, token = signer.new()
    assert signer.verify(token) == session


def test_forged_or_foreign_tokens_are_rejected():
    signer = SessionSigner(b"secret")
    session, token = signer.new()
    assert SessionSigner(b"other").verify(token) is None
    assert signer.verify(session + ".deadbeef") is None
    assert signer.verify("nodot") is None
    assert signer.verify("") is None
