"""The argparse value types shared by the add-on's command line and the tracker's."""

import argparse

import pytest

from flame_blender_addon.core.arguments import positive_int


def test_positive_int_takes_plain_whole_numbers_from_one():
    assert positive_int("1") == 1 and positive_int("0300") == 300
    for bad in ("0", "-1", "1.5", "x", "", " 3", "+3", "1e3"):
        with pytest.raises(argparse.ArgumentTypeError, match="is not a positive integer"):
            positive_int(bad)
