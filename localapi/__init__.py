"""A local stand-in for `sam local start-api`: HTTP requests become API Gateway HTTP API (payload
2.0) events for the functions that `template.yaml` routes them to, invoked in-process through
their real Lambda handlers. For `make run` and the integration tests, where no Docker engine runs.
"""
