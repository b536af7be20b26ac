"""Webhook triggers of stored workflows, as NodeDrop's ``webhook-trigger`` defines them.

NodeDrop's sources this follows (repository node-drop/nodedrop): ``backend/src/nodes/WebhookTrigger/
WebhookTrigger.node.ts`` (the node's parameters), ``backend/src/routes/webhook.ts`` (the route, the request
it builds, the answers), ``backend/src/services/TriggerService.ts`` (``activateWebhookTrigger``: the webhook
path; ``handleWebhookTrigger``: method, authentication, options, response modes) and
``backend/src/utils/webhookValidation.ts`` / ``hmacVerification.ts`` (HMAC signature, IP list, origins).

* :mod:`.config`: what a stored workflow's trigger nodes configure, checked when the workflow is stored;
* :mod:`.checks`: the request checks (authentication, HMAC, IP allow-list, bots, origins, CORS headers);
* :mod:`.requests`: the request as the trigger's input item;
* :mod:`.responses`: the answers (received, finished, errors).

The route itself is ``nodedrop_rq/api/webhook_routes.py``; the index of webhook paths is kept by
:mod:`nodedrop_rq.workflows_store`.
"""
