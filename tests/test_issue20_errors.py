"""No swallowed exceptions (issue 20, item 8): a tokenizer the user named must load; grading
catches math-verify's timeout only, so a fault in the library surfaces instead of reading as
"not equivalent"."""
import math_verify
import pytest
from math_verify.errors import TimeoutException

from srca import answers
from srca.engines.sglang_http import SGLangServerEngine

from fake_sglang_server import free_port, server  # noqa: F401 (server is a fixture)


# -- the HTTP engine's tokenizer ---------------------------------------------------------------
def test_a_named_tokenizer_that_does_not_load_is_an_error(server):
    with pytest.raises(ValueError, match=r"SGLangServerEngine\.tokenizer: cannot load '/nonexistent/tok'"):
        SGLangServerEngine(server.url, model="m", tokenizer="/nonexistent/tok", backoff_s=0.01)


async def test_the_servers_own_path_may_be_missing_here(server):
    # /model_info reports a tokenizer path that is not on this machine: the server's /tokenize
    eng = SGLangServerEngine(server.url, backoff_s=0.01)
    assert eng.tokenizer is None and eng.remote_tokenizer and eng.info.token_ids
    await eng.close()


async def test_tokenizer_false_asks_nothing_at_construction():
    # the server is down: with model= and tokenizer=False the constructor makes no call
    eng = SGLangServerEngine(f"http://127.0.0.1:{free_port()}", model="m", tokenizer=False)
    assert eng.tokenizer is None and not eng.info.token_ids
    await eng.close()


def test_a_bad_tokenizer_value_is_refused(server):
    with pytest.raises(ValueError, match="tokenizer"):
        SGLangServerEngine(server.url, model="m", tokenizer=True)


def test_an_unexpected_tokenizer_failure_surfaces(server, monkeypatch):
    import transformers

    def broken(*a, **k):
        raise RuntimeError("a bug in the tokenizer code")

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", broken)
    with pytest.raises(RuntimeError, match="a bug in the tokenizer code"):
        SGLangServerEngine(server.url, backoff_s=0.01)


# -- math-verify in grading ----------------------------------------------------------------------
@pytest.fixture
def fresh_caches():
    answers.clear_caches()
    yield
    answers.clear_caches()


def test_bad_input_is_not_equivalent_and_raises_nothing(fresh_caches):
    assert not answers.equivalent("\\frac{1}{2}", "\\frac{")
    assert not answers.equivalent("x + 1", "}}{{")
    assert answers.equivalent("x + 1", "1 + x")  # (math-verify's symbolic comparison)


def test_a_verify_timeout_is_not_equivalent(fresh_caches, monkeypatch):
    def slow(*a, **k):
        raise TimeoutException("Operation timed out!")

    monkeypatch.setattr(math_verify, "verify", slow)
    assert answers.equivalent("x + 1", "1 + x") is False


def test_a_parse_timeout_is_unparsable(fresh_caches, monkeypatch):
    def slow(*a, **k):
        raise TimeoutException("Operation timed out!")

    monkeypatch.setattr(math_verify, "parse", slow)
    assert not answers.is_math("x + 1")
    assert answers.canonical("X + 1") == "x + 1"  # the normalized text


def test_a_fault_in_verify_surfaces(fresh_caches, monkeypatch):
    def broken(*a, **k):
        raise RuntimeError("a bug in math-verify")

    monkeypatch.setattr(math_verify, "verify", broken)
    with pytest.raises(RuntimeError, match="a bug in math-verify"):
        answers.equivalent("x + 1", "1 + x")


def test_a_fault_in_parse_surfaces(fresh_caches, monkeypatch):
    def broken(*a, **k):
        raise ValueError("Math-Verify 'parse' function doesn't support threaded environment")

    monkeypatch.setattr(math_verify, "parse", broken)
    with pytest.raises(ValueError, match="threaded"):
        answers.is_math("x + 1")
