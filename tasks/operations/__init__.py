"""The four scheduled operations, one module each: its options, its typed result, and
the one function that orchestrates selectors, services and mail."""
