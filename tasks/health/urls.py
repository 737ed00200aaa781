from django.urls import path

from tasks.health import views

app_name = "health"
urlpatterns = [
    path("", views.liveness, name="liveness"),
    path("ready/", views.readiness, name="readiness"),
]
