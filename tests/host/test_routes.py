"""Route templates (pure): parameters, optional and catch-all forms, constraints, precedence, errors."""

from __future__ import annotations

import pytest

from devstack.functions_host.routes import RouteError, parse_route


@pytest.mark.parametrize(
    ("template", "path", "expected"),
    [
        ("pools/{poolId}", "pools/p1", {"poolId": "p1"}),
        ("pools/{poolId}", "POOLS/p1/", {"poolId": "p1"}),
        ("pools/{poolId}", "pools/a%20b", {"poolId": "a b"}),
        ("pools/{poolId}", "pools", None),
        ("pools/{poolId}/users/{user?}", "pools/p1/users", {"poolId": "p1"}),
        ("items/{id:int?}", "items/12", {"id": "12"}),
        ("items/{id:int?}", "items/x", None),
        ("items/{id:int}", "items/99999999999", None),
        ("items/{id:long}", "items/99999999999", {"id": "99999999999"}),
        ("items/{id=7}", "items", {"id": "7"}),
        ("files/{*path}", "files/a/b/c.txt", {"path": "a/b/c.txt"}),
        ("v/{n:range(1,5)}", "v/5", {"n": "5"}),
        ("v/{n:range(1,5)}", "v/6", None),
        ("v/{name:alpha:minlength(2)}", "v/ab", {"name": "ab"}),
        ("v/{name:alpha:minlength(2)}", "v/a", None),
        (
            "v/{g:guid}",
            "v/3f2504e0-4f89-11d3-9a0c-0305e82c3301",
            {"g": "3f2504e0-4f89-11d3-9a0c-0305e82c3301"},
        ),
        ("v/{code:regex(^[a-z]{{2}}$)}", "v/ab", {"code": "ab"}),
        ("v/{code:regex(^[a-z]{{2}}$)}", "v/abc", None),
        ("v/{code:regex(^(x|y)$)?}", "v", {}),
        ("v/{a}-{b}", "v/1-2", {"a": "1", "b": "2"}),
        ("", "", {}),
    ],
)
def test_matching(template: str, path: str, expected: dict | None) -> None:
    assert parse_route(template).match(path) == expected


def test_literal_segments_take_precedence_over_parameters() -> None:
    routes = sorted(
        (parse_route(t) for t in ["items/{id}", "items/{id:int}", "items/special"]),
        key=lambda r: r.precedence,
    )
    assert [r.template for r in routes] == ["items/special", "items/{id:int}", "items/{id}"]


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("x/{id:nosuch}", "unknown or malformed route constraint 'nosuch'"),
        ("x/{a?}/y", "optional parameter 'a' must be last"),
        ("x/{*rest}/y", "a catch-all parameter must be the last segment"),
        ("x/{a", "unbalanced brace"),
        ("x/{a}/{A}", "a parameter name is used twice"),
        ("x//y", "empty path segment"),
        ("x/{min:min(a)}", "needs integer arguments"),
    ],
)
def test_bad_templates_are_refused_with_the_reason(template: str, message: str) -> None:
    with pytest.raises(RouteError, match="route .*" + message.replace("(", r"\(").replace(")", r"\)")):
        parse_route(template)
