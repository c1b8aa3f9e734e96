from detstream.partitioner import murmur2, partition_for_key

# Vectors from Kafka's own client tests (Utils.murmur2), so keys land where Java puts them.
KAFKA_VECTORS = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
}


def test_murmur2_matches_kafka_vectors():
    for data, expected in KAFKA_VECTORS.items():
        assert murmur2(data) == expected, data


def test_same_key_same_partition_and_in_range():
    for n in (1, 3, 8, 100):
        for key in (b"", b"a", b"user-42", b"\xff\x00\x10"):
            p = partition_for_key(key, n)
            assert 0 <= p < n
            assert p == partition_for_key(key, n)


def test_keys_spread_over_partitions():
    used = {partition_for_key(f"key-{i}".encode(), 8) for i in range(200)}
    assert used == set(range(8))
