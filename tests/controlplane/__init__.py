"""The test control plane: Go modules that build its binaries, and the Python harness."""
