"""broker_credentials: checked when made, mapped to the same aiokafka options on every client.

No broker: the options are built by the transport and handed to the real
aiokafka client constructors (which validate them but do not connect).
"""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess

import pytest

import detstream
from detstream.auth import AuthProtocol, SASLMechanism, to_credentials
from detstream.errors import ImproperlyConfigured
from detstream.transport.kafka import auth as kafka_auth
from detstream.transport.kafka.auth import client_auth


def _clients(app):
    """(producer, consumer, admin) option dicts the Kafka transport would give aiokafka."""
    transport = app.transport
    return (
        transport.create_producer(client_id="p")._options,
        transport.create_consumer(client_id="c", group_id="g")._options,
        transport.create_admin(client_id="a")._options,
    )


AUTH_KEYS = ("security_protocol", "ssl_context", "sasl_mechanism", "sasl_plain_username",
             "sasl_plain_password", "sasl_kerberos_service_name", "sasl_kerberos_domain_name",
             "sasl_oauth_token_provider")


def _auth(options):
    return {k: options[k] for k in AUTH_KEYS if k in options}


def test_no_credentials_is_plaintext_on_every_client():
    for options in _clients(detstream.App("plain", broker="kafka://h:1")):
        assert _auth(options) == {"security_protocol": "PLAINTEXT"}


def test_an_ssl_context_is_tls_on_producer_consumer_and_admin():
    context = ssl.create_default_context()
    app = detstream.App("tls", broker="kafka://h:1", broker_credentials=context)
    assert isinstance(app.conf.broker_credentials, detstream.SSLCredentials)
    for options in _clients(app):
        assert _auth(options) == {"security_protocol": "SSL", "ssl_context": context}


def test_fausts_ssl_context_setting_alone_means_tls():
    context = ssl.create_default_context()
    app = detstream.App("tls2", broker="kafka://h:1", ssl_context=context)
    for options in _clients(app):
        assert _auth(options) == {"security_protocol": "SSL", "ssl_context": context}


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "scram-sha-512"])
def test_sasl_password_over_plaintext(mechanism):
    creds = detstream.SASLCredentials(username="ann", password="s3cret", mechanism=mechanism)
    app = detstream.App("sasl", broker="kafka://h:1", broker_credentials=creds)
    for options in _clients(app):
        assert _auth(options) == {
            "security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": mechanism.upper(),
            "sasl_plain_username": "ann", "sasl_plain_password": "s3cret",
        }


def test_sasl_with_an_ssl_context_is_sasl_ssl():
    context = ssl.create_default_context()
    creds = detstream.SASLCredentials(username="ann", password="pw", ssl_context=context)
    assert creds.protocol is AuthProtocol.SASL_SSL and creds.mechanism is SASLMechanism.PLAIN
    producer, consumer, admin = _clients(
        detstream.App("sasl-ssl", broker="kafka://h:1", broker_credentials=creds))
    for options in (producer, consumer, admin):
        assert options["security_protocol"] == "SASL_SSL"
        assert options["ssl_context"] is context and options["sasl_mechanism"] == "PLAIN"


def test_sasl_password_never_in_repr():
    creds = detstream.SASLCredentials(username="ann", password="hunter2")
    assert "hunter2" not in repr(creds) and "ann" in repr(creds)


def test_gssapi_without_the_gssapi_package_fails_at_transport_creation(monkeypatch):
    creds = detstream.GSSAPICredentials()
    app = detstream.App("krb", broker="kafka://h:1", broker_credentials=creds)
    monkeypatch.setattr(kafka_auth.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ImproperlyConfigured, match="needs the Python package 'gssapi'"):
        app.transport  # noqa: B018


def test_gssapi_maps_kerberos_names(monkeypatch):
    monkeypatch.setattr(kafka_auth, "_require_gssapi", lambda: None)  # gssapi may be absent
    creds = detstream.GSSAPICredentials(kerberos_service_name="kafka-svc",
                                        kerberos_domain_name="example.com")
    assert creds.protocol is AuthProtocol.SASL_PLAINTEXT
    app = detstream.App("krb", broker="kafka://h:1", broker_credentials=creds)
    for options in _clients(app):
        assert _auth(options) == {
            "security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "GSSAPI",
            "sasl_kerberos_service_name": "kafka-svc", "sasl_kerberos_domain_name": "example.com",
        }


def test_oauth_token_provider_is_passed_through():
    class Provider:
        async def token(self):
            return "tok"

    provider = Provider()
    context = ssl.create_default_context()
    creds = detstream.OAuthCredentials(oauth_cb=provider, ssl_context=context)
    for options in _clients(detstream.App("oauth", broker="kafka://h:1", broker_credentials=creds)):
        assert _auth(options) == {
            "security_protocol": "SASL_SSL", "sasl_mechanism": "OAUTHBEARER",
            "ssl_context": context, "sasl_oauth_token_provider": provider,
        }


@pytest.mark.parametrize(
    "make, says",
    [
        (lambda: detstream.SASLCredentials(username="ann"), "needs a non-empty str password"),
        (lambda: detstream.SASLCredentials(password="pw", mechanism="SCRAM-SHA-256"),
         "needs a non-empty str username"),
        (lambda: detstream.SASLCredentials(username="a", password="p", mechanism="MD5"),
         "mechanism 'MD5' is not one of 'PLAIN', 'SCRAM-SHA-256'"),
        (lambda: detstream.SASLCredentials(username="a", password="p", ssl_context="yes"),
         "ssl_context must be an ssl.SSLContext"),
        (lambda: detstream.GSSAPICredentials(kerberos_service_name=""),
         "kerberos_service_name must be a non-empty str"),
        (lambda: detstream.GSSAPICredentials(mechanism="PLAIN"), "mechanism 'PLAIN' is not one of"),
        (lambda: detstream.OAuthCredentials(oauth_cb=lambda: "tok"), "oauth_cb must be a token"),
        (lambda: detstream.SSLCredentials(cafile="/no/such/ca.pem"),
         "cannot build a TLS context from cafile='/no/such/ca.pem'"),
        (lambda: detstream.SSLCredentials(keyfile="k.pem"), "keyfile/password need the certfile"),
        (lambda: detstream.SSLCredentials(ssl.create_default_context(), cafile="ca.pem"),
         "give either a context or cafile"),
    ],
)
def test_bad_credentials_fail_when_made_with_a_clear_message(make, says):
    with pytest.raises(ImproperlyConfigured, match=says.replace("(", r"\(").replace("'", "'")):
        make()


@pytest.mark.parametrize("value", ["user:password", {"username": "a"}, 42, object()])
def test_broker_credentials_of_an_unknown_type_fail_at_app_definition(value):
    with pytest.raises(ImproperlyConfigured, match="'broker_credentials' must be an ssl.SSLContext"):
        detstream.App("bad", broker_credentials=value)


def test_ssl_context_setting_must_be_a_context():
    with pytest.raises(ImproperlyConfigured, match="'ssl_context' must be an ssl.SSLContext"):
        detstream.App("bad", ssl_context="/etc/ssl/ca.pem")


def test_credentials_win_over_the_ssl_context_setting():
    creds = detstream.SASLCredentials(username="a", password="p")
    options = client_auth(creds, ssl.create_default_context())
    assert options["security_protocol"] == "SASL_PLAINTEXT" and "ssl_context" not in options
    assert to_credentials(None) is None


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_ssl_credentials_load_a_client_certificate_from_files(tmp_path):
    cert, key = tmp_path / "client.pem", tmp_path / "client.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=detstream-test", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    creds = detstream.SSLCredentials(cafile=str(cert), certfile=str(cert), keyfile=str(key))
    assert isinstance(creds.context, ssl.SSLContext)
    assert creds.context.verify_mode == ssl.CERT_REQUIRED and creds.context.check_hostname
    assert creds.context.get_ca_certs()[0]["subject"] == ((("commonName", "detstream-test"),),)
    with pytest.raises(ImproperlyConfigured, match="keyfile='/no/key'"):
        detstream.SSLCredentials(certfile=str(cert), keyfile="/no/key")


def test_aiokafka_clients_accept_the_mapped_options():
    """The real constructors validate protocol/mechanism combinations: ours pass them."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient

    context = ssl.create_default_context()
    creds = detstream.SASLCredentials(username="a", password="p", mechanism="SCRAM-SHA-512",
                                      ssl_context=context)
    app = detstream.App("real", broker="kafka://h:1", broker_credentials=creds)
    producer, consumer, admin = _clients(app)

    async def build():
        clients = [AIOKafkaProducer(**producer), AIOKafkaConsumer(**consumer),
                   AIOKafkaAdminClient(**admin)]
        inner = [clients[0].client, clients[1]._client, clients[2]._client]
        seen = [(c._security_protocol, c._sasl_mechanism, c._ssl_context) for c in inner]
        await clients[0].stop()
        await clients[1].stop()
        await clients[2].close()
        return seen

    assert asyncio.run(build()) == [("SASL_SSL", "SCRAM-SHA-512", context)] * 3
