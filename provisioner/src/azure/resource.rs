//! Where an ARM resource in a resource group is: its ID for messages, status and role-assignment
//! scopes, and the same ID as path segments, from which requests are built (a name never joins
//! a string path, so none can add a segment; see [`super::client::Segments`]).

use std::marker::PhantomData;

/// A resource type: its provider namespace and type name.
pub trait ResourceType {
    /// e.g. `Microsoft.ContainerService`.
    const PROVIDER: &'static str;
    /// e.g. `managedClusters`.
    const TYPE: &'static str;
}

/// `Microsoft.ContainerService/managedClusters`: an AKS cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ManagedClusters;

impl ResourceType for ManagedClusters {
    const PROVIDER: &'static str = "Microsoft.ContainerService";
    const TYPE: &'static str = "managedClusters";
}

/// `Microsoft.ContainerRegistry/registries`: an Azure Container Registry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Registries;

impl ResourceType for Registries {
    const PROVIDER: &'static str = "Microsoft.ContainerRegistry";
    const TYPE: &'static str = "registries";
}

/// Where a resource of type `T` is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceRef<T> {
    /// Subscription ID.
    pub subscription_id: String,
    /// Resource group.
    pub resource_group: String,
    /// Resource name.
    pub name: String,
    resource_type: PhantomData<T>,
}

impl<T: ResourceType> ResourceRef<T> {
    /// Resource `name` in `resource_group` of `subscription_id`.
    pub fn new(subscription_id: impl Into<String>, resource_group: impl Into<String>, name: impl Into<String>) -> Self {
        ResourceRef {
            subscription_id: subscription_id.into(),
            resource_group: resource_group.into(),
            name: name.into(),
            resource_type: PhantomData,
        }
    }

    /// ARM ID (`/subscriptions/…`), for messages, status and role-assignment scopes (requests use
    /// [`ResourceRef::segments`]).
    pub fn id(&self) -> String {
        format!("/{}", self.segments().join("/"))
    }

    /// The ARM ID as path segments.
    pub fn segments(&self) -> [&str; 8] {
        [
            "subscriptions",
            &self.subscription_id,
            "resourceGroups",
            &self.resource_group,
            "providers",
            T::PROVIDER,
            T::TYPE,
            &self.name,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_id_is_the_segments_joined_under_the_resource_type() {
        let registry = ResourceRef::<Registries>::new("sub", "rg", "acr");
        assert_eq!(
            registry.id(),
            "/subscriptions/sub/resourceGroups/rg/providers/Microsoft.ContainerRegistry/registries/acr"
        );
        let cluster = ResourceRef::<ManagedClusters>::new("sub", "rg", "aks");
        assert_eq!(cluster.segments()[5..], ["Microsoft.ContainerService", "managedClusters", "aks"]);
    }
}
