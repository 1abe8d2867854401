"""String field types for the public API.

Text is stored verbatim (quotes, semicolons and SQL keywords included: every query binds its
parameters), with one exception the database forces: PostgreSQL text cannot hold NUL, so NUL
is refused with a 422 here instead of failing as a 500 at the database.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

# ECMA-262 and Rust regex both read \u0000, so the pattern means the same in the OpenAPI
# document as in pydantic's validation.
_NO_NUL = r"^[^\u0000]*$"
# Not `\s` alone: its set differs by engine (ECMA-262, which clients and the document's readers
# use, has U+FEFF; Rust's, which pydantic validates with, has U+0085; Python's has U+001C-U+001F
# too), so an address the document allowed could be refused (a fuzzer found U+0085). The union,
# spelled out, is the same set everywhere.
_NOT_IN_EMAIL = r"@\s\u0000\u001c-\u001f\u0085\ufeff"
_EMAIL = rf"^[^{_NOT_IN_EMAIL}]+@[^{_NOT_IN_EMAIL}]+\.[^{_NOT_IN_EMAIL}]+$"

Email = Annotated[
    str,
    Field(min_length=3, max_length=254, pattern=_EMAIL, examples=["ada@example.com"], description="An email address."),
]
Password = Annotated[str, Field(min_length=8, max_length=128, pattern=_NO_NUL, description="8 to 128 characters.")]
# A person's name goes into email subjects and headers, where a line break is an injection (or,
# refused by the mail library, an event in the DLQ): no control characters, C0 or C1 (which
# covers CR, LF, tab and NEL), nor the line and paragraph separators.
_NO_CONTROL = r"^[^\u0000-\u001f\u007f-\u009f\u2028\u2029]*$"
Name = Annotated[
    str,
    Field(
        min_length=1,
        max_length=200,
        pattern=_NO_CONTROL,
        examples=["Ada Lovelace"],
        description="No control characters or line breaks.",
    ),
]
Sku = Annotated[str, Field(min_length=1, max_length=64, pattern=_NO_NUL, examples=["SKU-1234"])]
# What logging in may send as the email: any text the database can compare (not NUL, which
# PostgreSQL text cannot hold: it was a 500), not necessarily an address.
LoginEmail = Annotated[str, Field(min_length=1, max_length=254, pattern=_NO_NUL)]
