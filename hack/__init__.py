"""The repository's generators and build scripts; the tests import what they check from here."""
