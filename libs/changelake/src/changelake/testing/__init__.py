"""Test helpers shipped with the package: in-memory fakes and record builders."""
