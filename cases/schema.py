"""OpenAPI descriptions of our authentication classes, so the schema tells clients how to log in."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "cases.authentication.BearerTokenAuthentication"
    name = "bearerToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A token from POST /api/auth/token, sent as `Authorization: Bearer <token>`.",
        }


class SessionScheme(OpenApiAuthenticationExtension):
    target_class = "cases.authentication.SessionAuthentication"
    name = "browserSession"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "cookie", "name": "sessionid", "description": "The browser session (CSRF)."}
