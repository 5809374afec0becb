"""keyrelay's security features seen from the official SDKs: HTTPS on the listener with a
generated certificate, and client tokens presented the way each SDK presents them."""

from __future__ import annotations

import ssl

import anthropic
import openai
import pytest
import trustme

TOKEN = "sdk-client-token-1234"


@pytest.fixture
def tls_files(tmp_path):
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    chain, key, ca_file = tmp_path / "chain.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    cert.cert_chain_pems[0].write_to_path(chain)
    for extra in cert.cert_chain_pems[1:]:
        extra.write_to_path(chain, append=True)
    cert.private_key_pem.write_to_path(key)
    ca.cert_pem.write_to_path(ca_file)
    return chain, key, ca_file


def test_openai_sdk_over_https(mock, start_keyrelay, tls_files):
    chain, key, ca_file = tls_files
    relay = start_keyrelay(
        [mock.key("k1", "gpt-tls")], ["--tls-cert", str(chain), "--tls-key", str(key)]
    )
    assert relay.url.startswith("https://")
    trust = ssl.create_default_context(cafile=str(ca_file))
    client = relay.client(http_client=openai.DefaultHttpxClient(verify=trust))
    reply = client.chat.completions.create(
        model="gpt-tls", messages=[{"role": "user", "content": "over tls"}]
    )
    assert reply.choices[0].message.content == "You said: over tls"
    stream = client.chat.completions.create(
        model="gpt-tls", messages=[{"role": "user", "content": "streamed tls"}], stream=True
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "You said: streamed tls"

    # A client that does not trust the certificate refuses to talk.
    untrusting = relay.client()
    with pytest.raises(openai.APIConnectionError):
        untrusting.chat.completions.create(
            model="gpt-tls", messages=[{"role": "user", "content": "x"}]
        )


def test_client_tokens_with_both_sdks(mock, start_keyrelay):
    relay = start_keyrelay(
        [mock.key("k1", "gpt-x"), mock.anthropic_key("a1", "claude-x")],
        extra_env={"KEYRELAY_TOKENS": f"other-token-5678,{TOKEN}"},
    )
    ok = relay.client(api_key=TOKEN).chat.completions.create(
        model="gpt-x", messages=[{"role": "user", "content": "hi"}]
    )
    assert ok.choices[0].message.content == "You said: hi"
    with pytest.raises(openai.AuthenticationError) as e:
        relay.client(api_key="wrong-token-0000").chat.completions.create(
            model="gpt-x", messages=[{"role": "user", "content": "hi"}]
        )
    assert e.value.status_code == 401

    message = relay.anthropic_client(api_key=TOKEN).messages.create(
        model="claude-x", max_tokens=20, messages=[{"role": "user", "content": "hi"}]
    )
    assert message.content[0].text == "You said: hi"
    with pytest.raises(anthropic.AuthenticationError):
        relay.anthropic_client(api_key="wrong-token-0000").messages.create(
            model="claude-x", max_tokens=20, messages=[{"role": "user", "content": "hi"}]
        )
    assert set(mock.hits()) == {"k1", "a1"}, "rejected calls never reached the upstream"
