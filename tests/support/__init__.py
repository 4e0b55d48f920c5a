"""Helpers the tests share: no tests here, so pytest collects nothing from this package."""
