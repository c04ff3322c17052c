from django.urls import path

from inventory import views

urlpatterns = [
    path("healthz", views.healthz),
    path("items/<int:item_id>", views.item),
]
