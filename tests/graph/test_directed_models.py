"""BLADE and DiGAE follow their equations; the loss sees reverse-edge hard negatives."""

from __future__ import annotations

import pytest
import torch

from recsci.graph.baselines import FeatureMLP, InDegreePopularity
from recsci.graph.directed import BLADE, DiGAE, DualRoleConv, RoleNeighbourhoods, neighbour_mean_matrix
from recsci.graph.models import DotProductDecoder, GraphSAGE

EDGE = torch.tensor([[0], [1]])  # a single edge 0 -> 1; node 2 is isolated


def perturbation_reaches(encoder, role: str, node: int, from_node: int) -> bool:
    """Does changing ``from_node``'s input change ``node``'s ``role`` embedding?"""
    torch.manual_seed(0)
    x = torch.randn(3, 4)
    base = getattr(encoder(x, EDGE), role)[node]
    x2 = x.clone()
    x2[from_node] += 1.0
    return not torch.allclose(getattr(encoder(x2, EDGE), role)[node], base)


def test_dual_role_conv_matches_the_equation() -> None:
    torch.manual_seed(0)
    conv = DualRoleConv(4, 3)
    source, target = torch.randn(3, 4), torch.randn(3, 4)
    edges = torch.tensor([[0, 0, 2], [1, 2, 1]])  # 0->1, 0->2, 2->1
    new_source, new_target = conv(source, target, RoleNeighbourhoods.build(edges, 3))
    # s_0' = W_s s_0 + W_so mean(t_1, t_2);  t_1' = W_t t_1 + W_ti mean(s_0, s_2)
    # source_update holds [W_s | W_so], target_update [W_t | W_ti].
    expected_s0 = conv.source_update(torch.cat([source[0], (target[1] + target[2]) / 2]))
    expected_t1 = conv.target_update(torch.cat([target[1], (source[0] + source[2]) / 2]))
    assert torch.allclose(new_source[0], expected_s0, atol=1e-6)
    assert torch.allclose(new_target[1], expected_t1, atol=1e-6)
    # Node 1 has no out-neighbours: its source embedding sees only itself (an all-zero mean).
    assert torch.allclose(
        new_source[1], conv.source_update(torch.cat([source[1], torch.zeros(4)])), atol=1e-6
    )


def test_weighted_neighbour_mean() -> None:
    x = torch.tensor([[1.0], [3.0], [0.0]])
    edges = torch.tensor([[0, 1, 1], [2, 2, 0]])  # 0 -> 2, 1 -> 2, 1 -> 0; node 1 has no in-neighbour
    plain = neighbour_mean_matrix(edges, 3) @ x
    weighted = neighbour_mean_matrix(edges, 3, torch.tensor([1.0, 0.25, 0.5])) @ x
    assert plain.squeeze(1).tolist() == pytest.approx([3.0, 0.0, 2.0])
    assert weighted[2].item() == pytest.approx((1.0 + 0.75) / 1.25)
    assert weighted[0].item() == pytest.approx(3.0)  # one in-neighbour: its value whatever the weight


def test_role_neighbourhoods_follow_the_orientation() -> None:
    edges = torch.tensor([[0, 0], [1, 2]])  # 0 -> 1, 0 -> 2
    out_to_source = RoleNeighbourhoods.build(edges, 3)
    in_to_source = RoleNeighbourhoods.build(edges, 3, orientation="in_to_source")
    x = torch.tensor([[1.0], [2.0], [4.0]])
    # out_to_source: node 0's source role reads its out-neighbours 1 and 2; node 1's target role reads 0.
    assert (out_to_source.source_side @ x).squeeze(1).tolist() == pytest.approx([3.0, 0.0, 0.0])
    assert (out_to_source.target_side @ x).squeeze(1).tolist() == pytest.approx([0.0, 1.0, 1.0])
    assert torch.equal(in_to_source.source_side.to_dense(), out_to_source.target_side.to_dense())
    assert torch.equal(in_to_source.target_side.to_dense(), out_to_source.source_side.to_dense())


def test_blade_out_to_source_orientation() -> None:
    encoder = BLADE(4, 8, 8, num_layers=1, orientation="out_to_source")
    assert perturbation_reaches(encoder, "source", node=0, from_node=1)  # s_0 aggregates its out-neighbour
    assert perturbation_reaches(encoder, "target", node=1, from_node=0)  # t_1 aggregates its in-neighbour
    assert not perturbation_reaches(encoder, "source", node=1, from_node=0)
    assert not perturbation_reaches(encoder, "target", node=0, from_node=1)


def test_blade_in_to_source_orientation_is_the_mirror() -> None:
    encoder = BLADE(4, 8, 8, num_layers=1, orientation="in_to_source")
    assert perturbation_reaches(encoder, "source", node=1, from_node=0)
    assert perturbation_reaches(encoder, "target", node=0, from_node=1)
    assert not perturbation_reaches(encoder, "source", node=0, from_node=1)


def test_blade_scores_are_asymmetric_and_symmetric_gnn_scores_are_not() -> None:
    torch.manual_seed(0)
    x = torch.randn(3, 4)
    decoder = DotProductDecoder()
    blade = BLADE(4, 8, 8)(x, EDGE)
    sage = GraphSAGE(4, 8, 8)(x, EDGE)
    u, v = torch.tensor([0]), torch.tensor([1])
    assert not torch.allclose(decoder(blade, u, v), decoder(blade, v, u))
    assert torch.allclose(decoder(sage, u, v), decoder(sage, v, u))


def test_digae_propagation_uses_degree_normalised_adjacency() -> None:
    torch.manual_seed(0)
    encoder = DiGAE(4, 8, 8, num_layers=1, alpha=0.5, beta=0.5)
    x = torch.randn(3, 4)
    out = encoder(x, EDGE)
    # One edge 0 -> 1 with d_out(0) = d_in(1) = 1: s_0 = W_s x_1 (+bias), t_1 = W_t x_0 (+bias).
    assert torch.allclose(out.source[0], encoder.source_layers[0].linear(x[1]), atol=1e-6)
    assert torch.allclose(out.target[1], encoder.target_layers[0].linear(x[0]), atol=1e-6)
    assert torch.allclose(out.source[2], torch.zeros(8))  # isolated: no messages, no self term


def test_popularity_ranks_by_in_degree() -> None:
    edges = torch.tensor([[0, 1, 2, 0], [3, 3, 3, 1]])
    emb = InDegreePopularity()(torch.zeros(4, 1), edges)
    scores = DotProductDecoder()(emb, torch.zeros(4, dtype=torch.long), torch.arange(4))
    assert scores.argsort(descending=True).tolist()[:2] == [3, 1]


def test_feature_mlp_has_two_roles() -> None:
    emb = FeatureMLP(4, 8, 8)(torch.randn(3, 4), EDGE)
    assert not torch.allclose(emb.source, emb.target)


@pytest.mark.parametrize("orientation", ["out_to_source", "in_to_source"])
def test_blade_learns_direction_on_a_tiny_chain(orientation: str) -> None:
    # 0 -> 1 -> 2 -> 3; trained with reverse edges as negatives, BLADE must prefer each true direction.
    torch.manual_seed(0)
    edges = torch.tensor([[0, 1, 2], [1, 2, 3]])
    x = torch.eye(4)
    encoder, decoder = BLADE(4, 16, 16, orientation=orientation), DotProductDecoder()
    optimiser = torch.optim.Adam(encoder.parameters(), lr=0.05)
    for _ in range(100):
        emb = encoder(x, edges)
        pos, rev = decoder(emb, edges[0], edges[1]), decoder(emb, edges[1], edges[0])
        loss = torch.nn.functional.softplus(-pos).mean() + torch.nn.functional.softplus(rev).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    emb = encoder(x, edges)
    assert (decoder(emb, edges[0], edges[1]) > decoder(emb, edges[1], edges[0])).all()


def test_both_sides_lets_a_role_see_the_other_side() -> None:
    # Without both_sides, t_0 (node 0 has no in-neighbours) ignores node 1; with it, t_0 sees t_1.
    assert not perturbation_reaches(BLADE(4, 8, 8, num_layers=1), "target", node=0, from_node=1)
    assert perturbation_reaches(BLADE(4, 8, 8, num_layers=1, both_sides=True), "target", node=0, from_node=1)


def test_input_skip_adds_a_projection_of_each_nodes_own_input() -> None:
    torch.manual_seed(0)
    encoder = BLADE(4, 8, 6, num_layers=2, input_skip=True)
    x = torch.randn(3, 4)
    emb = encoder(x, EDGE)
    assert emb.source.shape == emb.target.shape == (3, 6)
    # Without the skip projection the output is the plain stacked-layer encoder's.
    skip_source, skip_target = encoder.input_skip(x).chunk(2, dim=-1)
    encoder.input_skip = None
    plain = encoder(x, EDGE)
    assert torch.allclose(emb.source, plain.source + skip_source, atol=1e-6)
    assert torch.allclose(emb.target, plain.target + skip_target, atol=1e-6)
    assert not torch.allclose(emb.source, plain.source)


def test_input_skip_keeps_the_role_orientation() -> None:
    # The skip adds only the node's own input: who aggregates whom is unchanged.
    encoder = BLADE(4, 8, 8, num_layers=1, input_skip=True)
    assert perturbation_reaches(encoder, "source", node=0, from_node=1)
    assert not perturbation_reaches(encoder, "source", node=1, from_node=0)
    assert not perturbation_reaches(encoder, "target", node=0, from_node=1)
