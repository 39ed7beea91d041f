from tests.netfakes.fixtures import fake_dns, fake_rdap  # noqa: F401
