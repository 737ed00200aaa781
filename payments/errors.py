class PaymentsError(Exception):
    """A refused cash operation. The message is written for the person who asked."""
