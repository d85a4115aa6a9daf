"""What the tests (and the benchmarks) share: real servers, the app process, the mocks and
the builders of policy inputs."""
