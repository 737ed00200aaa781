from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

urlpatterns = [
    path("admin/", admin.site.urls),
    # By dotted name, as ROOT_URLCONF itself is: the project layer imports no app above
    # it (import-linter), and the tasks app owns its health pages.
    path("health/", include("tasks.health.urls")),
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
]
