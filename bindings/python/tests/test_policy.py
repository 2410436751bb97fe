"""The policy engine and a certificate's role."""

import pytest

import mbaps
from conftest import POLICY


def test_a_policy_explains_its_decisions():
    policy = mbaps.Policy.load(POLICY)
    assert policy.roles() == ["operator", "viewer"]
    allowed = policy.explain("viewer", bytes([0x03, 0x00, 0x64, 0x00, 0x0A]))
    assert allowed.allowed and allowed.rule == "roles.viewer.allow[0]" and allowed.missing is None
    denied = policy.explain("viewer", bytes([0x06, 0x00, 0x64, 0x00, 0x07]))
    assert not denied.allowed and denied.rule is None
    assert "no rule allows write single register (0x06)" in denied.missing
    assert not policy.explain(None, bytes([0x03, 0x00, 0x00, 0x00, 0x01])).allowed


def test_policy_mistakes_are_placed():
    with pytest.raises(mbaps.PolicyError) as raised:
        mbaps.Policy.parse('[roles.viewer]\nallow = [ { functions = ["reed"] } ]\n')
    assert isinstance(raised.value, ValueError)
    assert raised.value.line == 2 and raised.value.column > 0
    assert "reed" in str(raised.value)
    with pytest.raises(mbaps.PolicyError):
        mbaps.Policy.load("/nonexistent/policy.toml")


def test_the_role_of_a_certificate(pki):
    import ssl

    der = ssl.PEM_cert_to_DER_cert((pki / "client-operator.pem").read_text())
    assert mbaps.role_of(der) == "operator"
    der = ssl.PEM_cert_to_DER_cert((pki / "client-no-role.pem").read_text())
    assert mbaps.role_of(der) is None


def test_modbus_error_makes_the_class_of_its_code():
    assert type(mbaps.ModbusError(2)) is mbaps.IllegalDataAddress
    assert mbaps.ModbusError(0x0C).code == 0x0C
    assert mbaps.ServerDeviceBusy().code == 6
    with pytest.raises(ValueError):
        mbaps.ModbusError(0)


def test_a_modbus_error_pickles_with_its_code_and_an_application_subclass_changes_nothing():
    import pickle

    for error in (mbaps.ModbusError(0x0C, "odd"), mbaps.IllegalDataValue("why")):
        again = pickle.loads(pickle.dumps(error))
        assert (type(again), again.code, str(again)) == (type(error), error.code, str(error))

    class Busy(mbaps.ServerDeviceBusy):
        pass

    assert type(mbaps.ModbusError(6)) is mbaps.ServerDeviceBusy
