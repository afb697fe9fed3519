"""An embedded synthetic directed product graph: the default dataset, no download needed.

Products fall into categories; each category has base products (phones) and accessories (cases).
Base products link to accessories of their own category (phone -> case) far more often than the
reverse, so edges are mostly one-directional; a tunable share of edges is reciprocated. Out-degrees
and accessory popularity follow power laws, so in-degrees are heavy-tailed like real co-purchase
graphs. Features carry the category and, noisily, the role: a model can learn direction from them.
"""

from __future__ import annotations

from typing import Annotated

import numpy as np
import torch
from pydantic import Field
from torch_geometric.data import Data

Probability = Annotated[float, Field(ge=0.0, le=1.0)]


class SyntheticProductGraph:
    """Generator of the synthetic product graph; :meth:`load` returns a PyG ``Data``.

    ``edge_index`` is oriented query -> recommended product (base -> accessory); ``data.role`` is 0
    for base products and 1 for accessories, ``data.category`` the category id.
    """

    def __init__(
        self,
        num_nodes: Annotated[int, Field(ge=20)] = 2000,
        num_categories: Annotated[int, Field(ge=1)] = 20,
        accessory_share: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.6,
        mean_out_degree: Annotated[float, Field(gt=0.0)] = 6.0,
        degree_exponent: Annotated[float, Field(gt=1.0)] = 2.2,
        popularity_exponent: Annotated[float, Field(gt=1.0)] = 2.0,
        in_category_share: Probability = 0.9,
        accessory_to_accessory_share: Probability = 0.1,
        reciprocal_share: Probability = 0.05,
        feature_dim: Annotated[int, Field(ge=1)] = 32,
        feature_noise: Annotated[float, Field(ge=0.0)] = 1.0,
        seed: Annotated[int, Field(ge=0)] = 0,
    ) -> None:
        self.num_nodes = num_nodes
        self.num_categories = num_categories
        self.accessory_share = accessory_share
        self.mean_out_degree = mean_out_degree
        self.degree_exponent = degree_exponent
        self.popularity_exponent = popularity_exponent
        self.in_category_share = in_category_share
        self.accessory_to_accessory_share = accessory_to_accessory_share
        self.reciprocal_share = reciprocal_share
        self.feature_dim = feature_dim
        self.feature_noise = feature_noise
        self.seed = seed

    name = "synthetic_products"

    def load(self) -> Data:
        rng = np.random.default_rng(self.seed)
        n = self.num_nodes
        category = rng.integers(0, self.num_categories, size=n)
        role = (rng.random(n) < self.accessory_share).astype(np.int64)  # 1 = accessory
        # Heavy-tailed popularity of accessories: who gets linked to (in-degree).
        popularity = rng.pareto(self.popularity_exponent - 1.0, size=n) + 1.0
        sources = self._out_edges_sources(rng, np.flatnonzero(role == 0))
        # A share of the links come from accessories (case -> screen protector), also one-directional.
        extra = int(round(self.accessory_to_accessory_share * len(sources)))
        accessories = np.flatnonzero(role == 1)
        sources = np.concatenate([sources, rng.choice(accessories, size=extra)])
        targets = self._pick_targets(rng, sources, category, role, popularity)
        edges = np.stack([sources, targets])
        edges = edges[:, edges[0] != edges[1]]
        edges = self._add_reciprocal(rng, edges)
        edge_index = torch.unique(torch.from_numpy(edges), dim=1)
        data = Data(
            x=self._features(rng, category, role),
            edge_index=edge_index,
            num_nodes=n,
        )
        data.category = torch.from_numpy(category)
        data.role = torch.from_numpy(role)
        return data

    def _out_edges_sources(self, rng: np.random.Generator, base_nodes: np.ndarray) -> np.ndarray:
        # Power-law out-degrees (Pareto, shifted to >= 1), rescaled to the requested mean.
        raw = rng.pareto(self.degree_exponent - 1.0, size=len(base_nodes)) + 1.0
        degrees = np.maximum(1, np.round(raw * self.mean_out_degree / raw.mean())).astype(np.int64)
        return np.repeat(base_nodes, degrees)

    def _pick_targets(
        self,
        rng: np.random.Generator,
        sources: np.ndarray,
        category: np.ndarray,
        role: np.ndarray,
        popularity: np.ndarray,
    ) -> np.ndarray:
        """Accessory targets, by popularity, within the source's category with ``in_category_share``."""
        accessories = np.flatnonzero(role == 1)
        weights = popularity[accessories]
        # Per category: the accessories and the cumulative popularity to invert with searchsorted.
        order = np.argsort(category[accessories], kind="stable")
        accessories, weights = accessories[order], weights[order]
        acc_category = category[accessories]
        bounds = np.searchsorted(acc_category, np.arange(self.num_categories + 1))
        cumulative = np.cumsum(weights)
        start_mass = np.concatenate([[0.0], cumulative])[bounds[:-1]]
        end_mass = np.concatenate([[0.0], cumulative])[bounds[1:]]

        src_category = category[sources]
        # Categories without accessories, or the out-of-category share, draw from all accessories.
        in_category = (rng.random(len(sources)) < self.in_category_share) & (
            end_mass[src_category] > start_mass[src_category]
        )
        low = np.where(in_category, start_mass[src_category], 0.0)
        high = np.where(in_category, end_mass[src_category], cumulative[-1])
        draws = low + rng.random(len(sources)) * (high - low)
        picked = np.minimum(np.searchsorted(cumulative, draws, side="right"), len(accessories) - 1)
        return accessories[picked]

    def _add_reciprocal(self, rng: np.random.Generator, edges: np.ndarray) -> np.ndarray:
        reciprocate = rng.random(edges.shape[1]) < self.reciprocal_share
        return np.concatenate([edges, edges[::-1, reciprocate]], axis=1)

    def _features(self, rng: np.random.Generator, category: np.ndarray, role: np.ndarray) -> torch.Tensor:
        # A random centroid per category plus a shared role direction, blurred by isotropic noise.
        centroids = rng.normal(size=(self.num_categories, self.feature_dim))
        role_direction = rng.normal(size=self.feature_dim)
        noise = rng.normal(scale=self.feature_noise, size=(len(category), self.feature_dim))
        features = centroids[category] + np.outer(2 * role - 1, role_direction) * 0.5 + noise
        return torch.from_numpy(features.astype(np.float32))
