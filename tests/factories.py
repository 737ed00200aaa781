from decimal import Decimal

import factory
from django.contrib.auth import get_user_model

from payments.models import Agent


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda user: f"{user.username}@example.com")
    password = factory.django.Password("pw")


class StaffUserFactory(UserFactory):
    is_staff = True
    username = factory.Sequence(lambda n: f"staff{n}")


class AgentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Agent

    user = factory.SubFactory(UserFactory)
    code = factory.Sequence(lambda n: f"AG{n:04d}")
    full_name = factory.Faker("name")
    phone = factory.Sequence(lambda n: f"+261 34 00 {n:03d} 00")
    email = factory.LazyAttribute(lambda agent: f"{agent.code.lower()}@agents.example.com")
    location = "Antananarivo"
    commission_rate = None


def money(value: str) -> Decimal:
    return Decimal(value)
