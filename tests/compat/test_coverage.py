"""Every public method of the installed langgraph_sdk client has a compat test.

The SDK's surface is found by introspection (sdk_surface.py), so a method a new SDK
release adds fails this test until a compat test names it in its
`@pytest.mark.compat(area, *methods)` marker.
"""

from __future__ import annotations

from compat.sdk_surface import PROTOCOL_METHODS, RESOURCES, compat_tests, sdk_methods


def test_every_sdk_method_has_a_compat_test():
    methods = sdk_methods()
    assert {m.split(".")[0] for m in methods} == set(RESOURCES)
    assert len(methods) >= 40  # introspection found the surface, not an empty list
    covered = {m for _, named in compat_tests().values() for m in named}
    missing = sorted(set(methods) - covered)
    assert not missing, f"SDK methods without a compat test: {missing}"


def test_compat_markers_name_real_sdk_methods():
    methods = set(sdk_methods()) | PROTOCOL_METHODS
    tests = compat_tests()
    assert tests, "no compat tests found"
    unknown = {name: [m for m in named if m not in methods]
               for name, (_, named) in tests.items() if any(m not in methods for m in named)}
    assert not unknown, f"compat markers naming no SDK method: {unknown}"
    without = [name for name, (_, named) in tests.items() if not named]
    assert not without, f"compat tests naming no SDK method: {without}"
