from django.contrib.auth.views import LoginView, LogoutView
from django.urls import include, path, re_path
from oauth2_provider.views import ConnectDiscoveryInfoView

from . import views

urlpatterns = [
    # DOT: /o/authorize/, /o/token/, /o/revoke_token/, /o/introspect/, /o/userinfo/,
    # /o/.well-known/jwks.json, /o/device-authorization/, /o/device/ (the user's page), ...
    # Ahead of DOT's own view at the same path: the answer carries the test's interval.
    path("o/device-authorization/", views.DeviceAuthorization.as_view()),
    path("o/", include("oauth2_provider.urls", namespace="oauth2_provider")),
    # Discovery at the root, where issuer + "/.well-known/..." puts it (issuer = base URL).
    re_path(r"^\.well-known/openid-configuration/?$", ConnectDiscoveryInfoView.as_view()),
    path(".well-known/oauth-authorization-server", views.authorization_server_metadata),
    path("accounts/login/", LoginView.as_view(), name="login"),
    path("accounts/logout/", LogoutView.as_view(), name="logout"),
    path("_test/health", views.health),
    path("_test/clients", views.register_client),
    path("_test/users", views.create_user),
    path("_test/tokens", views.issue_tokens),
    path("_test/counters", views.counters),
    path("_test/revoke", views.revoke_all),
    path("_test/token-status", views.token_status),
    path("_test/settings", views.update_settings),
    path("_test/device", views.device),
]
