//! `arcana.v1.OidcClientService` over the OIDC clients port.
use std::sync::Arc;

use crate::convert::v1::update_client_from_request;
use crate::v1::{self, oidc_client_service_server::OidcClientService as OidcClientRpc};
use domain::OidcClientService;
use tonic::{Request, Response, Status};

use super::{PrincipalSource, bearer};

type Answer<T> = std::result::Result<Response<T>, Status>;

/// Serves the OIDC clients port to callers identified by `P`.
pub struct OidcClientGrpc<P> {
    clients: Arc<dyn OidcClientService>,
    source: P,
}

impl<P: PrincipalSource> OidcClientGrpc<P> {
    pub fn new(clients: Arc<dyn OidcClientService>, source: P) -> Self {
        Self { clients, source }
    }
}

#[tonic::async_trait]
impl<P: PrincipalSource> OidcClientRpc for OidcClientGrpc<P> {
    async fn create_client(
        &self,
        req: Request<v1::CreateClientRequest>,
    ) -> Answer<v1::IssuedClient> {
        let clients = &self.clients;
        bearer(&self.source, "CreateClient", req, |caller, m| async move {
            clients
                .create_client(&caller, m.try_into()?)
                .await
                .map(Into::into)
        })
        .await
    }

    async fn list_clients(
        &self,
        req: Request<v1::ListClientsRequest>,
    ) -> Answer<v1::ListClientsResponse> {
        let clients = &self.clients;
        bearer(&self.source, "ListClients", req, |caller, m| async move {
            clients
                .list_clients(&caller, m.try_into()?)
                .await
                .map(Into::into)
        })
        .await
    }

    async fn get_client(&self, req: Request<v1::GetClientRequest>) -> Answer<v1::OidcClient> {
        let clients = &self.clients;
        bearer(&self.source, "GetClient", req, |caller, m| async move {
            let (id,) = m.parse()?;
            clients.get_client(&caller, &id).await.map(Into::into)
        })
        .await
    }

    async fn update_client(&self, req: Request<v1::UpdateClientRequest>) -> Answer<v1::OidcClient> {
        let clients = &self.clients;
        bearer(&self.source, "UpdateClient", req, |caller, m| async move {
            let (id, patch) = update_client_from_request(m);
            clients
                .update_client(&caller, &id, patch)
                .await
                .map(Into::into)
        })
        .await
    }

    async fn delete_client(
        &self,
        req: Request<v1::DeleteClientRequest>,
    ) -> Answer<v1::DeleteClientResponse> {
        let clients = &self.clients;
        bearer(&self.source, "DeleteClient", req, |caller, m| async move {
            let (id,) = m.parse()?;
            clients.delete_client(&caller, &id).await.map(Into::into)
        })
        .await
    }

    async fn rotate_client_secret(
        &self,
        req: Request<v1::RotateClientSecretRequest>,
    ) -> Answer<v1::IssuedClient> {
        let clients = &self.clients;
        bearer(
            &self.source,
            "RotateClientSecret",
            req,
            |caller, m| async move {
                let (id,) = m.parse()?;
                clients
                    .rotate_client_secret(&caller, &id)
                    .await
                    .map(Into::into)
            },
        )
        .await
    }
}
