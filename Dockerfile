# One image per function: `--build-arg FUNCTION=chat` (or health); SAM passes it from the
# template's Metadata.DockerBuildArgs. The shared package is installed into each image, because
# Image functions cannot attach Lambda layers. amazon/aws-lambda-python is AWS's Lambda base
# image for Python as published on Docker Hub.
ARG PYTHON_VERSION=3.13
FROM amazon/aws-lambda-python:${PYTHON_VERSION} AS build
ARG FUNCTION
COPY layers/common /tmp/common
COPY functions/${FUNCTION}/requirements.txt /tmp/requirements.txt
RUN python3 -m pip install --no-cache-dir --target /opt/site /tmp/common -r /tmp/requirements.txt

FROM amazon/aws-lambda-python:${PYTHON_VERSION}
ARG FUNCTION
COPY --from=build /opt/site ${LAMBDA_TASK_ROOT}
COPY functions/${FUNCTION}/app.py ${LAMBDA_TASK_ROOT}/
CMD ["app.handler"]
