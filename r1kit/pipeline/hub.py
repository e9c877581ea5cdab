"""``hub.push=true``: upload the pipeline's final model, with its model card, to the Hugging
Face Hub once every stage is done. The token is checked at validation time
(``r1kit.config.requirements``); a push that fails here (network, permissions) stops with a
message, and since every stage has its manifest by then, rerunning the command only pushes."""

from __future__ import annotations

from pathlib import Path

from r1kit.run.errors import RunStopped


def push_model(model_dir: Path, hub, *, message: str) -> str:
    """Create ``hub.repo_id`` if needed and upload ``model_dir``; returns the repository URL."""
    from huggingface_hub import HfApi

    from r1kit.config.requirements import hub_token

    api = HfApi(token=hub_token())
    try:
        url = api.create_repo(hub.repo_id, private=hub.private, exist_ok=True)
        api.upload_folder(repo_id=hub.repo_id, folder_path=str(model_dir),
                          commit_message=message)
    except Exception as error:  # the model is safe on disk: say where, and how to retry
        raise RunStopped(f"hub.push: pushing {model_dir} to {hub.repo_id} failed "
                         f"({type(error).__name__}: {error}); the model is saved there, "
                         "rerun the same command to push again") from error
    return str(url)
