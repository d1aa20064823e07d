"""The ``[mqtt]`` section of a lane config: how the lane reaches central's broker.

Kept apart from the link itself (gatewayd.link) so that validating a config never loads the
MQTT client.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator

from drivers.settings import Section, invalid


class MqttTls(Section):
    ca_file: Path = Field(description="CA certificate(s) that signed the broker's certificate.")
    cert_file: Path | None = Field(
        None, description="This lane's client certificate (when the broker asks for one)."
    )
    key_file: Path | None = Field(None, description="Private key of the client certificate.")
    server_name_check: bool = Field(
        True, description="Check the broker's certificate names the host connected to."
    )

    @model_validator(mode="after")
    def _pair(self) -> MqttTls:
        if (self.cert_file is None) != (self.key_file is None):
            raise invalid("MqttTls", ("cert_file",), "give both cert_file and key_file", None)
        return self

    def check_files(self) -> None:
        """Raise ``ValueError`` naming a file that cannot be read (``config.field_problems``
        asks, for `gatewayd run` and `config validate`): they are read again at each
        connection (certificates get renewed), where a missing one would only say 'No such
        file or directory', retried for ever."""
        for key in ("ca_file", "cert_file", "key_file"):
            path: Path | None = getattr(self, key)
            if path is None:
                continue
            try:
                with path.open("rb"):
                    pass
            except OSError as exc:
                raise ValueError(f"mqtt.tls.{key} {path}: {exc.strerror or exc}") from None


class MqttSection(Section):
    host: str = Field(min_length=1, description="Broker host name or address.")
    port: int | None = Field(
        None, ge=1, le=65535, description="Broker port; default 1883, or 8883 with TLS."
    )
    client_id: str | None = Field(
        None,
        max_length=128,
        description="MQTT client id of the lane's persistent session; default: the lane id.",
    )
    topic_root: str = Field("gate", min_length=1, description="Topics are ROOT/site/lane/...")
    username: str | None = Field(None, description="User name, when the broker asks for one.")
    password: str | None = Field(None, description="Password (prefer password_file).")
    password_file: Path | None = Field(None, description="File whose first line is the password.")
    tls: MqttTls | None = Field(None, description="TLS to the broker; absent: plain TCP.")
    keepalive_s: int = Field(15, ge=5, le=600, description="MQTT keep-alive interval.")
    reconnect_initial_s: float = Field(
        0.5, gt=0, le=60, description="First wait before reconnecting after a failure."
    )
    reconnect_max_s: float = Field(
        30.0, gt=0, le=600, description="Longest wait between reconnection attempts."
    )
    max_message_bytes: int = Field(
        1 << 20, ge=1024, description="Longer messages from the broker are refused unread."
    )
    incoming_queue: int = Field(
        200, ge=20, le=100_000, description="Messages held between the client and the lane."
    )
    inflight: int = Field(
        20, ge=1, le=1000, description="QoS 1 messages sent but not yet acknowledged, at most."
    )
    publish_batch: int = Field(
        100, ge=1, le=10_000, description="Outbox rows read and sent per round."
    )
    connect_timeout_s: float = Field(
        5.0, gt=0, le=120, description="Give up on a connection not accepted (CONNACK) by then."
    )
    publish_timeout_s: float = Field(
        10.0, gt=0, le=300, description="A PUBACK not back by then: the connection is dead."
    )
    status_interval_s: float = Field(
        60.0, gt=0, le=3600, description="How often the retained status is refreshed."
    )
    resync_grace_s: float = Field(
        1.0, gt=0, le=600, description="Ask for a resync when a gap has not narrowed this long."
    )
    resync_timeout_s: float = Field(
        5.0, gt=0, le=600, description="Ask again when a resync is not answered by then."
    )
    max_pending_deltas: int = Field(
        2000, ge=10, description="Out-of-order ledger deltas held while a gap is filled."
    )
    command_max_age_s: float = Field(
        300.0, gt=0, description="Commands issued longer ago (by the lane's clock) are refused."
    )
    outbox_alert_pending: int = Field(
        5000, ge=1, description="Alert when this many outbox rows wait for delivery."
    )
    outbox_retention_h: float = Field(
        168.0, ge=0, description="Delivered outbox rows are deleted after this many hours."
    )
    outbox_keep_delivered: int = Field(
        100_000, ge=0, description="At most this many delivered rows are kept, newest first."
    )
    housekeeping_s: float = Field(
        60.0, gt=0, le=3600, description="How often the outbox is pruned and its size checked."
    )

    @model_validator(mode="after")
    def _checks(self) -> MqttSection:
        if self.reconnect_max_s < self.reconnect_initial_s:
            message = "must be at least reconnect_initial_s"
            raise invalid("MqttSection", ("reconnect_max_s",), message, self.reconnect_max_s)
        if self.password is not None and self.password_file is not None:
            raise invalid("MqttSection", ("password",), "give password or password_file", None)
        if self.username is None and (self.password or self.password_file):
            raise invalid("MqttSection", ("username",), "a password needs a username", None)
        if self.incoming_queue < self.inflight:
            message = "must hold at least `inflight` messages"
            raise invalid("MqttSection", ("incoming_queue",), message, self.incoming_queue)
        return self

    @property
    def effective_port(self) -> int:
        """The port to connect to."""
        if self.port is not None:
            return self.port
        return 8883 if self.tls is not None else 1883

    def secret(self) -> str | None:
        """The password, read from password_file when one is given."""
        if self.password_file is not None:
            try:
                lines = self.password_file.read_text(encoding="utf-8").splitlines()
            except (OSError, UnicodeDecodeError) as exc:
                why = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
                raise ValueError(f"mqtt.password_file {self.password_file}: {why}") from None
            return lines[0] if lines else ""
        return self.password
