"""Hypothesis strategies for audit entries: what services may append, and what may be stored."""

from hypothesis import strategies as st

# PostgreSQL text refuses NUL, and UTF-8 cannot carry lone surrogates.
_characters = st.characters(codec="utf-8", exclude_characters="\x00")


def texts(*, min_size: int = 0, max_size: int) -> st.SearchStrategy[str]:
    return st.text(_characters, min_size=min_size, max_size=max_size)


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.decimals(allow_nan=False, allow_infinity=False)
    | st.decimals(places=2, min_value=-(10**12), max_value=10**12)
    | texts(max_size=20)
)

json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(texts(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)

data_dicts = st.dictionaries(texts(max_size=12), json_values, max_size=5)

hex_hashes = st.text("0123456789abcdef", min_size=64, max_size=64)

# One call to audit_entry_append; actor and subject are indexes into the ``users`` fixture.
appends = st.fixed_dictionaries(
    {
        "action": texts(min_size=1, max_size=64),
        "actor": st.none() | st.sampled_from([0, 1]),
        "subject": st.none() | st.sampled_from([0, 1]),
        "data": data_dicts,
    }
)


def append_kwargs(spec: dict, users: list) -> dict:
    def pick(index):
        return None if index is None else users[index]

    return {
        "action": spec["action"],
        "actor": pick(spec["actor"]),
        "subject": pick(spec["subject"]),
        "data": spec["data"],
    }
