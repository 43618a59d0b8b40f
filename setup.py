"""One distribution for every deployable. The streaming/recount image (docker/dataflow/Dockerfile) installs it
with requirements.lock into the Beam SDK container, so Dataflow workers install nothing at start-up."""
from setuptools import find_packages, setup

setup(
    name="hashtag-service",
    version="0.1.0",
    description="Hashtag pages: streaming counts (Beam), nightly recount (Airflow), Flask page",
    python_requires=">=3.11,<3.12",
    packages=find_packages(include=["hashtags", "hashtags.*", "hashtag_store", "hashtag_store.*",
                                    "pipelines", "pipelines.*", "serving", "serving.*",
                                    "devstack", "devstack.*", "hashtag_ops", "hashtag_ops.*"]),
    include_package_data=True,
    package_data={"serving": ["templates/*.html", "static/*", "health/*"]},
    # What the jobs need at run time (pinned); the full pinned set for development is requirements.lock.
    install_requires=[
        "apache-beam[gcp]==2.77.0",
        "google-cloud-bigtable==2.50.2",
        "google-cloud-logging==3.17.0",  # hashtag_ops.logs: the mains' JSON lines on the Flex Template launcher
        "google-cloud-pubsub==2.44.0",
        "regex==2026.11.15",
    ],
    extras_require={
        "serving": ["Flask==3.1.3", "Jinja2==3.1.6", "granian==2.8.7"],
    },
)
