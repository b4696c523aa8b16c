# One image per function: `--build-arg FUNCTION=chat` (or health); SAM passes it from the
# template's Metadata.DockerBuildArgs. The shared package is installed into each image, because
# Image functions cannot attach Lambda layers. amazon/aws-lambda-python is AWS's Lambda base
# image for Python as published on Docker Hub.
#
# Everything is installed at build time; the final stage holds only the base image, the
# installed packages and the function's app.py (no pip cache, build tools or tests).
ARG PYTHON_VERSION=3.13
FROM amazon/aws-lambda-python:${PYTHON_VERSION} AS build
# A package index other than pip's default, when the build needs one: `docker build --build-arg
# PIP_INDEX_URL=...`. pip reads these variables; left unset, they change nothing. (sam build
# passes only Metadata.DockerBuildArgs; the CI's stand-in base image carries a pip.conf instead.)
ARG PIP_INDEX_URL
ARG PIP_EXTRA_INDEX_URL
ARG PIP_TRUSTED_HOST
# The shared package first and before ARG FUNCTION: its layer is the same for every function,
# so the second image's build reuses the first's.
COPY layers/common /tmp/common
RUN python3 -m pip install --no-cache-dir --disable-pip-version-check --target /opt/site /tmp/common
ARG FUNCTION
COPY functions/${FUNCTION}/requirements.txt /tmp/requirements.txt
RUN python3 -m pip install --no-cache-dir --disable-pip-version-check --target /opt/site \
        -r /tmp/requirements.txt

FROM amazon/aws-lambda-python:${PYTHON_VERSION}
ARG FUNCTION
COPY --from=build /opt/site ${LAMBDA_TASK_ROOT}
COPY functions/${FUNCTION}/app.py ${LAMBDA_TASK_ROOT}/
CMD ["app.handler"]
