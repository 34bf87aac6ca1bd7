"""What is being served: enough to reproduce or audit any answer."""

from __future__ import annotations

from fastapi import APIRouter

from service.api.deps import ServiceDep, SettingsDep
from service.api.schemas import ERROR_RESPONSES, ModelResponse

router = APIRouter(tags=["model"])


@router.get("/v1/model", response_model=ModelResponse, responses=ERROR_RESPONSES, summary="The served model")
async def model_info(service: ServiceDep, settings: SettingsDep) -> ModelResponse:
    bundle = service.bundle
    manifest = bundle.manifest
    return ModelResponse(
        name=manifest.name,
        version=manifest.version,
        created=manifest.created,
        architecture=manifest.architecture.to_dict(),
        labels=bundle.labels,
        num_classes=len(bundle.labels),
        input_size=list(manifest.preprocessing.input_size),
        preprocessing=manifest.preprocessing.to_dict(),
        providers=service.providers,
        variant=bundle.variant,
        # a bundle exported without a test split may record nulls: reported as not measured (absent)
        accuracy={k: float(v) for k, v in bundle.classify.accuracy.items() if v is not None},
        bundle_digest=bundle.digest,
        explain=bundle.explain is not None,
        max_batch_size=service.classify_batcher.max_batch_size,
        batch_buckets=list(settings.batch_buckets),
        engine_images_per_second={str(k): round(v, 2) for k, v in service.engine_rates.items()},
    )
