"""Tests of the converters at the edges of a tile: quantize_symmetric, DAC and ADC."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from xbar.crossbar import ADC, DAC, quantize_symmetric

# A ramp over twice the full scale, dense enough that every level of an 8-bit grid is hit many times.
RAMP = jnp.linspace(-2.0, 2.0, 100_001)


@pytest.mark.parametrize("bits", [2, 3, 4, 6, 8])
def test_quantizer_level_count(bits):
    levels = np.unique(np.asarray(quantize_symmetric(RAMP, 1.0, bits)))

    assert levels.size == 2**bits - 1
    assert 0.0 in levels
    # Uniform grid with step full_scale / (2^(b-1) - 1).
    np.testing.assert_allclose(np.diff(levels), 1.0 / (2 ** (bits - 1) - 1), rtol=1e-5)


def test_one_bit_quantizer_gives_full_scale():
    out = np.asarray(quantize_symmetric(jnp.array([-3.0, -0.1, 0.0, 0.2, 5.0]), 0.7, 1))

    np.testing.assert_array_equal(out, np.array([-0.7, -0.7, 0.7, 0.7, 0.7], np.float32))
    assert np.unique(np.asarray(quantize_symmetric(RAMP, 0.7, 1))).size == 2


@pytest.mark.parametrize("bits", [1, 2, 5, 8])
def test_quantizer_saturates_at_range(bits):
    full_scale = 2.5
    out = np.asarray(quantize_symmetric(jnp.array([-1e6, -2.5, 2.5, 3.0, 1e6]), full_scale, bits))

    np.testing.assert_allclose(out, [-2.5, -2.5, 2.5, 2.5, 2.5], rtol=1e-6)
    assert np.abs(np.asarray(quantize_symmetric(RAMP * 10, full_scale, bits))).max() <= full_scale * (1 + 1e-6)


@pytest.mark.parametrize("bits", [2, 4, 8])
def test_quantizer_error_within_half_step(bits):
    inside = RAMP[jnp.abs(RAMP) <= 1.0]
    error = np.abs(np.asarray(quantize_symmetric(inside, 1.0, bits)) - np.asarray(inside))

    assert error.max() <= 0.5 / (2 ** (bits - 1) - 1) * (1 + 1e-5)


def test_ideal_converters_pass_through():
    x = jnp.array([-1e3, -1.5, 0.0, 0.3, 7.0, 1e3])

    np.testing.assert_array_equal(DAC()(x), x)
    np.testing.assert_array_equal(DAC(input_range=4.0)(x), x / 4.0)
    np.testing.assert_array_equal(ADC()(x), x)
    assert ADC().is_ideal
    assert not ADC(current_range=1e-6).is_ideal


def test_dac_quantizes_normalized_drive():
    dac = DAC(bits=3, input_range=2.0)
    out = np.asarray(dac(jnp.array([-5.0, -2.0, -0.6, 0.0, 0.7, 2.0, 9.0])))

    # 3 bits: levels k / 3 for k = -3..3 over the normalized drive x / 2.
    np.testing.assert_allclose(out, [-1.0, -1.0, -1.0 / 3.0, 0.0, 1.0 / 3.0, 1.0, 1.0], rtol=1e-6)


def test_one_bit_dac_gives_plus_minus_full_drive():
    out = np.asarray(DAC(bits=1, input_range=3.0)(jnp.array([-10.0, -0.01, 0.0, 0.5, 10.0])))

    np.testing.assert_array_equal(out, [-1.0, -1.0, 1.0, 1.0, 1.0])


def test_adc_saturates_without_bits():
    adc = ADC(current_range=1e-6)
    out = np.asarray(adc(jnp.array([-5e-6, -1e-6, 3e-7, 1e-6, 2e-6])))

    np.testing.assert_allclose(out, [-1e-6, -1e-6, 3e-7, 1e-6, 1e-6], rtol=1e-6)


def test_adc_levels_and_saturation():
    adc = ADC(bits=4, current_range=2e-6)
    out = np.asarray(adc(RAMP * 3e-6))

    assert np.unique(out).size == 15
    assert np.abs(out).max() == pytest.approx(2e-6, rel=1e-6)


def test_converters_digitize_each_vector_alone():
    rng = np.random.default_rng(5)
    batch = rng.normal(size=(6, 10)).astype(np.float32)
    changed = batch.copy()
    changed[1:] = rng.normal(size=(5, 10)) * 100
    dac, adc = DAC(bits=4, input_range=1.5), ADC(bits=5, current_range=1.0)

    np.testing.assert_array_equal(dac(batch)[0], dac(changed)[0])
    np.testing.assert_array_equal(adc(batch)[0], adc(changed)[0])
    np.testing.assert_array_equal(dac(batch)[0], dac(batch[0]))


def test_converters_under_jit_and_vmap():
    dac, adc = DAC(bits=4), ADC(bits=6, current_range=1e-6)
    x = jnp.linspace(-1.2, 1.2, 31)

    np.testing.assert_array_equal(jax.jit(dac)(x), dac(x))
    np.testing.assert_array_equal(jax.jit(adc)(x * 1e-6), adc(x * 1e-6))
    ranges = jnp.array([0.5, 1.0, 2.0])
    batched = jax.vmap(lambda r: quantize_symmetric(x, r, 4))(ranges)
    for i, r in enumerate(np.asarray(ranges)):
        np.testing.assert_allclose(batched[i], quantize_symmetric(x, float(r), 4), rtol=1e-6)


@pytest.mark.parametrize("converter", [DAC, ADC])
def test_reject_bad_bits(converter):
    extra = {} if converter is DAC else {"current_range": 1e-6}
    name = converter.__name__

    with pytest.raises(ValueError, match=rf"{name} bits must be at least 1 bit, got 0"):
        converter(bits=0, **extra)
    with pytest.raises(ValueError, match=rf"{name} bits must be at least 1 bit, got -3"):
        converter(bits=-3, **extra)
    with pytest.raises(ValueError, match=rf"{name} bits must be an integer .* got 2.5"):
        converter(bits=2.5, **extra)
    with pytest.raises(ValueError, match=rf"{name} bits must be an integer .* got True"):
        converter(bits=True, **extra)
    with pytest.raises(ValueError, match=rf"{name} bits = 25 is beyond float32 resolution"):
        converter(bits=25, **extra)


def test_reject_bad_ranges():
    with pytest.raises(ValueError, match="DAC input_range must be finite and > 0, got 0.0"):
        DAC(input_range=0.0)
    with pytest.raises(ValueError, match="ADC current_range must be finite and > 0, got -1e-06 A"):
        ADC(current_range=-1e-6)
    with pytest.raises(ValueError, match="ADC with bits=8 needs current_range"):
        ADC(bits=8)


def test_straight_through_gradient_inside_range():
    dac = DAC(bits=4, straight_through=True)
    adc = ADC(bits=4, current_range=1e-4, straight_through=True)

    assert float(jax.grad(lambda x: dac(x))(0.37)) == pytest.approx(1.0)
    assert float(jax.grad(lambda x: dac(x))(1.5)) == 0.0
    assert float(jax.grad(lambda i: adc(i))(3.3e-5)) == pytest.approx(1.0)
    assert float(jax.grad(lambda i: adc(i))(-2e-4)) == 0.0


def test_straight_through_keeps_forward_values():
    x = jnp.linspace(-1.2, 1.2, 101)

    np.testing.assert_array_equal(DAC(bits=3, straight_through=True)(x), DAC(bits=3)(x))


def test_hard_quantizer_gradient_is_zero():
    assert float(jax.grad(lambda x: DAC(bits=4)(x))(0.37)) == 0.0
