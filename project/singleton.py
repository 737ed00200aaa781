from django.db import models


class SingletonModel(models.Model):
    """A settings row edited in the admin: always pk=1, created on first read."""

    class Meta:
        abstract = True

    def save(self, *args, **kwargs) -> None:
        self.pk = 1
        super().save(*args, **kwargs)

    @classmethod
    def load(cls):
        instance, _ = cls.objects.get_or_create(pk=1)
        return instance

    @classmethod
    def peek(cls):
        """The row, or an unsaved one with the defaults: for pages that only read (a GET
        writes nothing, and nothing unaudited)."""
        return cls.objects.filter(pk=1).first() or cls(pk=1)
