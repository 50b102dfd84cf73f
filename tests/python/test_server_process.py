"""The `fjord server` process itself: start-up configuration checks and a
clean stop."""

import subprocess
import tempfile

from helpers import fjord_bin


def test_server_refuses_an_unknown_config_key_and_names_it():
    """A misspelt key stops the start (non-zero exit) with the key named."""
    with tempfile.TemporaryDirectory(prefix="fjord-pytest-") as log_dir:
        cmd = [
            fjord_bin(), "server",
            "--override", "listeners=PLAINTEXT://127.0.0.1:0",
            "--override", f"log.dirs={log_dir}",
            "--override", "log.retention.hourz=5",
        ]
        try:
            proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
        except subprocess.TimeoutExpired as e:
            raise AssertionError(
                f"fjord kept running with an unknown key; stderr:\n{(e.stderr or b'').decode(errors='replace')}"
            ) from None
    stderr = proc.stderr.decode(errors="replace")
    assert proc.returncode != 0, f"fjord exited 0 with an unknown key; stderr:\n{stderr}"
    assert "log.retention.hourz" in stderr, stderr


def test_server_exits_zero_on_sigterm(broker):
    """SIGTERM is a clean shutdown: exit status 0 within the stop timeout."""
    assert broker.stop() == 0, broker.stderr_tail()


def test_server_reads_a_kafka_server_properties_file(start_broker, tmp_path):
    """`--config server.properties` with Kafka's keys: acted-on keys take effect, a valid Kafka
    key not acted on yet is warned about at start, and `--override` wins over the file."""
    props = tmp_path / "server.properties"
    props.write_text(
        "# a Kafka-style file\n"
        "num.partitions=4\n"
        "auto.create.topics.enable=true\n"
        "num.network.threads=3\n"
        "log.retention.hours=1\n"
    )
    broker = start_broker(
        overrides={"log.retention.hours": "2"}, extra_args=("--config", str(props))
    )
    from kafka import KafkaProducer, KafkaAdminClient
    from kafka.admin import ConfigResource, ConfigResourceType

    producer = KafkaProducer(bootstrap_servers=broker.bootstrap)
    producer.send("from-file", b"x").get(timeout=15)
    assert len(producer.partitions_for("from-file")) == 4
    producer.close()

    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        response = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, "from-file")])
    finally:
        admin.close()
    entries = {e[0]: e[1] for e in response[0].resources[0][4]}
    assert entries["retention.ms"] == str(2 * 3600 * 1000)
    assert "num.network.threads" in broker.stderr_text()
    assert "not acted on" in broker.stderr_text()
