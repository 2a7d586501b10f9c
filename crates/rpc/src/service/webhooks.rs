//! `arcana.v1.WebhookService` over the webhooks port.
use std::sync::Arc;

use crate::v1::{self, webhook_service_server::WebhookService as WebhookRpc};
use domain::WebhookService;
use tonic::{Request, Response, Status};

use super::{PrincipalSource, bearer};

type Answer<T> = std::result::Result<Response<T>, Status>;

/// Serves the webhooks port to callers identified by `P`.
pub struct WebhookGrpc<P> {
    webhooks: Arc<dyn WebhookService>,
    source: P,
}

impl<P: PrincipalSource> WebhookGrpc<P> {
    pub fn new(webhooks: Arc<dyn WebhookService>, source: P) -> Self {
        Self { webhooks, source }
    }
}

#[tonic::async_trait]
impl<P: PrincipalSource> WebhookRpc for WebhookGrpc<P> {
    async fn create_webhook(
        &self,
        req: Request<v1::CreateWebhookRequest>,
    ) -> Answer<v1::IssuedWebhook> {
        let w = &self.webhooks;
        bearer(&self.source, "CreateWebhook", req, |caller, m| async move {
            w.create_webhook(&caller, m.try_into()?)
                .await
                .map(Into::into)
        })
        .await
    }

    async fn list_webhooks(
        &self,
        req: Request<v1::ListWebhooksRequest>,
    ) -> Answer<v1::ListWebhooksResponse> {
        let w = &self.webhooks;
        bearer(&self.source, "ListWebhooks", req, |caller, _| async move {
            w.list_webhooks(&caller).await.map(Into::into)
        })
        .await
    }

    async fn get_webhook(&self, req: Request<v1::WebhookIdRequest>) -> Answer<v1::Webhook> {
        let w = &self.webhooks;
        bearer(&self.source, "GetWebhook", req, |caller, m| async move {
            let (id,) = m.parse()?;
            w.get_webhook(&caller, id).await.map(Into::into)
        })
        .await
    }

    async fn update_webhook(&self, req: Request<v1::UpdateWebhookRequest>) -> Answer<v1::Webhook> {
        let w = &self.webhooks;
        bearer(&self.source, "UpdateWebhook", req, |caller, m| async move {
            let (id, patch) = m.patch()?;
            w.update_webhook(&caller, id, patch).await.map(Into::into)
        })
        .await
    }

    async fn delete_webhook(
        &self,
        req: Request<v1::WebhookIdRequest>,
    ) -> Answer<v1::DeleteWebhookResponse> {
        let w = &self.webhooks;
        bearer(&self.source, "DeleteWebhook", req, |caller, m| async move {
            let (id,) = m.parse()?;
            w.delete_webhook(&caller, id).await.map(Into::into)
        })
        .await
    }

    async fn test_webhook(
        &self,
        req: Request<v1::WebhookIdRequest>,
    ) -> Answer<v1::WebhookDelivery> {
        let w = &self.webhooks;
        bearer(&self.source, "TestWebhook", req, |caller, m| async move {
            let (id,) = m.parse()?;
            w.test_webhook(&caller, id).await.map(Into::into)
        })
        .await
    }

    async fn list_webhook_deliveries(
        &self,
        req: Request<v1::ListWebhookDeliveriesRequest>,
    ) -> Answer<v1::ListWebhookDeliveriesResponse> {
        let w = &self.webhooks;
        bearer(
            &self.source,
            "ListWebhookDeliveries",
            req,
            |caller, m| async move {
                let (id, query) = m.query()?;
                w.list_webhook_deliveries(&caller, id, query)
                    .await
                    .map(Into::into)
            },
        )
        .await
    }

    async fn retry_webhook_delivery(
        &self,
        req: Request<v1::RetryWebhookDeliveryRequest>,
    ) -> Answer<v1::WebhookDelivery> {
        let w = &self.webhooks;
        bearer(
            &self.source,
            "RetryWebhookDelivery",
            req,
            |caller, m| async move {
                let (id, delivery) = m.parse()?;
                w.retry_webhook_delivery(&caller, id, delivery)
                    .await
                    .map(Into::into)
            },
        )
        .await
    }
}
