"""The V2 / Open Inference Protocol over REST (KServe, Triton, MLServer, Seldon).

``GET /v2``, the health and readiness probes, model metadata, and ``POST /v2/models/{name}[/versions/{v}]/infer``.
A request sends one FP/INT tensor of shape ``[rows, features]`` (any name; ``input-0`` in the metadata), nested
or flat row-major, or one input per feature named by feature name (shape ``[rows]`` or ``[rows, 1]``, the
pandas codec's layout). Outputs are ``predict`` (labels, at the version's stored threshold unless the
``threshold`` request parameter says otherwise) and ``predict_proba`` (``[rows, classes]``, FP64); both when
``outputs`` is omitted. Tensors may travel as binary data after the JSON object (:mod:`.binary`, the
``binary_tensor_data`` extension). Every answer under ``/v2`` that is an error, routing 404s and 405s included,
is ``{"error": "<message>"}`` as the protocol says (:func:`service.api.errors.error_answer`).

Modules: :mod:`.schemas` (the JSON), :mod:`.binary` (the extension's bytes), :mod:`.tensors` (inputs into rows),
:mod:`.inference` (one request's rules, from body to answer), :mod:`.routes`.
"""

from .routes import V2_TAG, router

__all__ = ["V2_TAG", "router"]
