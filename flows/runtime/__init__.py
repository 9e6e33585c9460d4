"""Prefect plumbing under the flows: the local serverless setup (:mod:`local_prefect`), a Prefect
server process (:mod:`server_process`) and the one kept between commands (:mod:`kept_server`),
the deployments pipelines.yaml plans (:mod:`deployment_plan`) applied to a server
(:mod:`deployments`) or served by one local process (:mod:`serve_schedules`), and `crnn doctor`'s
checks of every backend (:mod:`doctor`)."""
