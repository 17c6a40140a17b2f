"""Cloud detection from environment variables only."""

from __future__ import annotations

import os

import pytest

from comet_callbacks.capture.cloud import collect_cloud_details


def test_nothing_detected() -> None:
    assert collect_cloud_details({"HOME": "/root", "PATH": "/usr/bin"}) is None


def test_sagemaker_without_secrets() -> None:
    env = {
        "TRAINING_JOB_NAME": "job-1",
        "SM_CURRENT_HOST": "algo-1",
        "SM_HPS": '{"api_key": "x"}',
        "AWS_REGION": "eu-west-1",
        "AWS_ACCESS_KEY_ID": "AKIA...",
        "AWS_SECRET_ACCESS_KEY": "s3cr3t",
        "AWS_SESSION_TOKEN": "tok",
        "KUBERNETES_SERVICE_HOST": "10.0.0.1",
        "HOME": "/root",
    }
    provider, meta = collect_cloud_details(env)
    assert provider == "AWS"
    assert meta == {
        "AWS_REGION": "eu-west-1",
        "SM_CURRENT_HOST": "algo-1",
        "TRAINING_JOB_NAME": "job-1",
    }


def test_gcp_azure_kubernetes_slurm() -> None:
    assert collect_cloud_details({"AIP_MODEL_DIR": "gs://b/m", "GOOGLE_CLOUD_PROJECT": "p"}) == (
        "GCP",
        {"AIP_MODEL_DIR": "gs://b/m", "GOOGLE_CLOUD_PROJECT": "p"},
    )
    assert collect_cloud_details({"AZUREML_RUN_ID": "r1", "AZUREML_RUN_TOKEN": "t"}) == (
        "Azure",
        {"AZUREML_RUN_ID": "r1"},
    )
    assert collect_cloud_details(
        {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "HOSTNAME": "pod-7", "USER": "me"}
    ) == ("Kubernetes", {"HOSTNAME": "pod-7", "KUBERNETES_SERVICE_HOST": "10.0.0.1"})
    assert collect_cloud_details(
        {"SLURM_JOB_ID": "42", "SLURM_NTASKS": "4", "SLURM_AUTH_KEY": "k"}
    ) == ("SLURM", {"SLURM_JOB_ID": "42", "SLURM_NTASKS": "4"})


def test_secret_only_variable_does_not_detect() -> None:
    assert collect_cloud_details({"AZUREML_TOKEN": "t"}) is None


def test_reads_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        monkeypatch.delenv(name)
    monkeypatch.setenv("SLURM_JOB_ID", "99")
    assert collect_cloud_details() == ("SLURM", {"SLURM_JOB_ID": "99"})
