"""ECS and CloudFormation: the task and service definitions against
botocore's input shapes and the daemon's needs, the template's properties,
and the stacks created in the AWS emulator (their policies must be
deploy/iam's, which `checks.iam` holds to the code's list)."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

from checks.common import (
    ECS,
    EXAMPLE_VARS,
    IMAGE_CONFIG,
    OPERATOR_POLICY,
    POLICY,
    REQUIRED_ENV,
    TEMPLATE,
    Problems,
    listen_port,
    render_json,
    shutdown_grace,
)

# --- ECS -------------------------------------------------------------------


def validate_shape(service: str, operation: str, params: dict, p: Problems, what: str) -> None:
    import botocore.session
    from botocore.validate import ParamValidator

    model = botocore.session.get_session().get_service_model(service)
    shape = model.operation_model(operation).input_shape
    report = ParamValidator().validate(params, shape)
    p.check(not report.has_errors(), f"{what} is not valid {service} {operation} input:\n{report.generate_report()}")


def ecs_documents(values: dict[str, str] | None = None) -> dict[str, dict]:
    return {name: render_json(ECS / f"{name}.json", values) for name in ("task-definition", "service-definition", "scalable-target", "scaling-policy")}


def cmd_ecs(args) -> int:
    import botocore

    p = Problems(f"ECS (botocore {botocore.__version__})")
    docs = ecs_documents()
    validate_shape("ecs", "RegisterTaskDefinition", docs["task-definition"], p, "task-definition.json")
    validate_shape("ecs", "CreateService", docs["service-definition"], p, "service-definition.json")
    validate_shape("application-autoscaling", "RegisterScalableTarget", docs["scalable-target"], p, "scalable-target.json")
    validate_shape("application-autoscaling", "PutScalingPolicy", docs["scaling-policy"], p, "scaling-policy.json")
    if p.items:
        return p.finish()

    cfg = tomllib.loads(IMAGE_CONFIG.read_text())
    port = listen_port(cfg)
    grace = shutdown_grace(cfg)
    td = docs["task-definition"]
    p.check(bool(td.get("taskRoleArn")) and bool(td.get("executionRoleArn")), "taskRoleArn and executionRoleArn must be set")
    cds = td["containerDefinitions"]
    p.check(len(cds) == 1, "expected one container")
    c = cds[0]
    p.check(td["family"] == docs["service-definition"]["taskDefinition"], "the service does not run the task family")
    p.check(c.get("readonlyRootFilesystem") is True, "readonlyRootFilesystem is not true")
    p.check(c.get("user") == "65532:65532", "the container does not run as 65532:65532")
    p.check(c.get("linuxParameters", {}).get("capabilities", {}).get("drop") == ["ALL"], "capabilities do not drop ALL")
    p.check(not c.get("privileged"), "the container is privileged")
    stop = c.get("stopTimeout", 30)
    p.check(grace + 15 <= stop <= 120, f"stopTimeout {stop} is not between worker.shutdown_grace + 15s ({grace + 15:g}) and Fargate's 120")
    hc = c.get("healthCheck", {})
    p.check(hc.get("command", [None])[0] == "CMD", "the health check must be CMD (the image has no shell)")
    p.check(hc.get("command", [None, None, None])[1:3] == ["/usr/local/bin/triggered-cache", "healthcheck"], "the health check does not run /usr/local/bin/triggered-cache healthcheck")
    p.check(any(f":{port}/healthz" in a for a in hc.get("command", [])), f"the health check does not probe :{port}/healthz")
    p.check(any(pm.get("containerPort") == port for pm in c.get("portMappings", [])), f"no portMapping {port}")
    log = c.get("logConfiguration", {})
    p.check(log.get("logDriver") == "awslogs", "logs do not go to CloudWatch (awslogs)")
    for opt in ("awslogs-group", "awslogs-region", "awslogs-stream-prefix"):
        p.check(opt in log.get("options", {}), f"awslogs option {opt} is missing")
    env = {e["name"]: e["value"] for e in c.get("environment", [])}
    for key in REQUIRED_ENV:
        p.check(bool(env.get(key)), f"{key} is not in the environment")
    svc = docs["service-definition"]
    dc = svc.get("deploymentConfiguration", {})
    p.check(dc.get("minimumHealthyPercent", 0) >= 100, "deployments may stop tasks before their successors run")
    p.check(dc.get("deploymentCircuitBreaker", {}).get("rollback") is True, "no circuit-breaker rollback")
    p.check(svc["networkConfiguration"]["awsvpcConfiguration"].get("assignPublicIp") == "DISABLED", "tasks get public IPs")
    pol = docs["scaling-policy"]["TargetTrackingScalingPolicyConfiguration"]
    names = json.dumps(pol)
    p.check("ApproximateNumberOfMessagesVisible" in names and "ApproximateNumberOfMessagesNotVisible" in names, "the scaling metric does not count visible and in-flight messages")
    return p.finish()


# --- CloudFormation --------------------------------------------------------


def load_template() -> dict:
    from cfnlint.decode import cfn_yaml

    return cfn_yaml.load(str(TEMPLATE))


def cmd_cfn_static(args) -> int:
    p = Problems("CloudFormation template")
    t = load_template()
    res = t["Resources"]

    def typed(kind):
        return {k: v for k, v in res.items() if v["Type"] == kind}

    queues = typed("AWS::SQS::Queue")
    p.check(set(queues) == {"RequestQueue", "DeadLetterQueue"}, f"queues {sorted(queues)}")
    for name, q in queues.items():
        p.check("KmsMasterKeyId" in q["Properties"], f"{name} is not encrypted with the KMS key")
    rq = queues.get("RequestQueue", {}).get("Properties", {})
    rp = rq.get("RedrivePolicy", {})
    p.check("deadLetterTargetArn" in rp and "maxReceiveCount" in rp, "the request queue has no redrive policy")
    p.check("RedriveAllowPolicy" in queues.get("DeadLetterQueue", {}).get("Properties", {}), "the DLQ does not restrict its sources")
    table = typed("AWS::DynamoDB::Table").get("Table", {})
    tp = table.get("Properties", {})
    p.check(tp.get("BillingMode") == "PAY_PER_REQUEST", "the table is not on-demand")
    p.check(tp.get("PointInTimeRecoverySpecification", {}).get("PointInTimeRecoveryEnabled") is True, "point-in-time recovery is off")
    p.check(table.get("DeletionPolicy") == "Retain", "the table is not retained on stack deletion")
    deps = typed("AWS::DynamoDB::Table").get("DependencyTable", {})
    dp = deps.get("Properties", {})
    p.check(deps.get("Condition") == "HasDependencyTable", "the dependency table is not optional (Condition HasDependencyTable)")
    p.check(dp.get("BillingMode") == "PAY_PER_REQUEST", "the dependency table is not on-demand")
    p.check(dp.get("PointInTimeRecoverySpecification", {}).get("PointInTimeRecoveryEnabled") is True, "the dependency table has no point-in-time recovery")
    p.check([k["AttributeName"] for k in dp.get("KeySchema", [])] == ["entity", "dependent"], "the dependency table's keys are not entity/dependent")
    topic = typed("AWS::SNS::Topic").get("Topic", {}).get("Properties", {})
    p.check("KmsMasterKeyId" in topic, "the topic is not encrypted")
    key = typed("AWS::KMS::Key").get("EncryptionKey", {}).get("Properties", {})
    p.check(key.get("EnableKeyRotation") is True, "key rotation is off")
    bucket = typed("AWS::S3::Bucket").get("ValuesBucket", {})
    bp = bucket.get("Properties", {})
    p.check(bucket.get("Condition") == "HasValuesBucket", "the values bucket is not optional (Condition HasValuesBucket)")
    p.check("ServerSideEncryptionConfiguration" in bp.get("BucketEncryption", {}), "the values bucket is not encrypted")
    pab = bp.get("PublicAccessBlockConfiguration", {})
    p.check(len(pab) == 4 and all(v is True for v in pab.values()), "the values bucket does not block public access")
    rules = bp.get("LifecycleConfiguration", {}).get("Rules", [])
    p.check(any(r.get("TagFilters") == [{"Key": "triggered-cache", "Value": "uncommitted"}] and "ExpirationInDays" in r for r in rules),
            "no lifecycle rule expires uncommitted objects (the orphan backstop)")
    outputs = set(t.get("Outputs", {}))
    for o in ("Region", "QueueUrl", "DeadLetterQueueUrl", "TableName", "TopicArn", "RoleArn", "KmsKeyArn"):
        p.check(o in outputs, f"output {o} is missing")
    names = {"QueueName", "DeadLetterQueueName", "TableName", "TopicName"}
    p.check(names <= set(t.get("Parameters", {})), f"name parameters missing: {sorted(names - set(t.get('Parameters', {})))}")
    return p.finish()


def stack_outputs(cfn, name: str) -> dict[str, str]:
    stack = cfn.describe_stacks(StackName=name)["Stacks"][0]
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def policy_document(iam, arn: str) -> dict:
    version = iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"]
    doc = iam.get_policy_version(PolicyArn=arn, VersionId=version)["PolicyVersion"]["Document"]
    return json.loads(doc) if isinstance(doc, str) else doc


# The statements of deploy/iam's policies that exist only with a values
# bucket (ValuesPolicy in the template, and the operators' conditional one).
S3_SIDS = {"OffloadedValues", "ListOffloadedValues", "ReadOffloadedValues"}


def cmd_cfn_emulator(args) -> int:
    import boto3

    p = Problems("CloudFormation in the emulator")
    region = "us-east-1"
    kw = dict(endpoint_url=args.endpoint, region_name=region, aws_access_key_id="test", aws_secret_access_key="test")
    cfn, iam = boto3.client("cloudformation", **kw), boto3.client("iam", **kw)
    sqs, ddb, sns, kms = (boto3.client(s, **kw) for s in ("sqs", "dynamodb", "sns", "kms"))
    ecs, aas = boto3.client("ecs", **kw), boto3.client("application-autoscaling", **kw)
    body = TEMPLATE.read_text()
    oidc = "arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE"
    keda = "arn:aws:iam::123456789012:role/keda-operator"
    stacks = {
        # EKS: defaults, IRSA for the service account, KEDA may assume the role.
        "verify-eks": {"EksOidcProviderArn": oidc, "KedaOperatorRoleArn": keda,
                       "DependencyTableName": "triggered-cache-deps",
                       "ValuesBucketName": "verify-triggered-cache-values"},
        # ECS: other names, a sort key, no operator policy.
        "verify-ecs": {
            "Platform": "ecs", "QueueName": "tc-ecs-requests", "DeadLetterQueueName": "tc-ecs-dlq",
            "TableName": "tc-ecs", "TopicName": "tc-ecs-events", "TableSortKey": "sk", "CreateOperatorPolicy": "false",
        },
    }
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, params in stacks.items():
        cfn.create_stack(
            StackName=name, TemplateBody=body, Capabilities=["CAPABILITY_IAM"],
            Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in params.items()],
        )
        stack = cfn.describe_stacks(StackName=name)["Stacks"][0]
        if not p.check(stack["StackStatus"] == "CREATE_COMPLETE", f"{name}: {stack['StackStatus']} {stack.get('StackStatusReason', '')}"):
            continue
        o = stack_outputs(cfn, name)
        (out_dir / f"{name}.json").write_text(json.dumps(o, indent=2))
        qname = params.get("QueueName", "triggered-cache-requests")
        dname = params.get("DeadLetterQueueName", "triggered-cache-dlq")
        tname = params.get("TableName", "triggered-cache")
        topic_name = params.get("TopicName", "triggered-cache-events")
        expected = {"Region", "QueueUrl", "QueueArn", "DeadLetterQueueUrl", "DeadLetterQueueArn", "TableName", "TopicArn", "KmsKeyArn", "RoleArn", "DaemonPolicyArn"}
        if params.get("CreateOperatorPolicy", "true") == "true":
            expected.add("OperatorPolicyArn")
        if params.get("Platform") == "ecs":
            expected |= {"ExecutionRoleArn", "LogGroupName"}
        deps_name = params.get("DependencyTableName", "")
        if deps_name:
            expected |= {"DependencyTableName", "DependencyPolicyArn"}
        values_bucket = params.get("ValuesBucketName", "")
        if values_bucket:
            expected |= {"ValuesBucketName", "ValuesPolicyArn"}
        p.check(set(o) == expected, f"{name}: outputs {sorted(o)}, expected {sorted(expected)}")
        p.check(o.get("Region") == region, f"{name}: Region output {o.get('Region')}")
        p.check(o.get("QueueUrl", "").endswith("/" + qname), f"{name}: QueueUrl {o.get('QueueUrl')}")
        p.check(o.get("DeadLetterQueueUrl", "").endswith("/" + dname), f"{name}: DeadLetterQueueUrl {o.get('DeadLetterQueueUrl')}")
        p.check(o.get("TableName") == tname, f"{name}: TableName {o.get('TableName')}")
        p.check(o.get("TopicArn", "").endswith(":" + topic_name), f"{name}: TopicArn {o.get('TopicArn')}")

        # The queue: encrypted, redriving to the DLQ.
        qa = sqs.get_queue_attributes(QueueUrl=o["QueueUrl"], AttributeNames=["All"])["Attributes"]
        p.check(qa.get("KmsMasterKeyId") == o["KmsKeyArn"], f"{name}: the queue is not encrypted with the stack's key")
        redrive = json.loads(qa.get("RedrivePolicy", "{}"))
        p.check(redrive.get("deadLetterTargetArn") == o["DeadLetterQueueArn"], f"{name}: redrive target {redrive.get('deadLetterTargetArn')}")
        p.check(int(redrive.get("maxReceiveCount", 0)) == 10, f"{name}: maxReceiveCount {redrive.get('maxReceiveCount')}")
        p.check(qa.get("ReceiveMessageWaitTimeSeconds") == "20", f"{name}: the queue does not long-poll")
        da = sqs.get_queue_attributes(QueueUrl=o["DeadLetterQueueUrl"], AttributeNames=["All"])["Attributes"]
        p.check(da.get("KmsMasterKeyId") == o["KmsKeyArn"], f"{name}: the DLQ is not encrypted with the stack's key")
        p.check(da.get("MessageRetentionPeriod") == "1209600", f"{name}: the DLQ keeps messages {da.get('MessageRetentionPeriod')}s, not 14 days")
        # The key.
        # (moto 5.2.5 cannot DescribeKey a key whose policy came from a
        # template; the alias and the rotation status show the key.)
        key_id = o["KmsKeyArn"].rsplit("/", 1)[1]
        aliases = {a["AliasName"]: a.get("TargetKeyId") for a in kms.list_aliases()["Aliases"]}
        p.check(aliases.get(f"alias/{qname}") == key_id, f"{name}: alias/{qname} does not name the stack's key")
        p.check(kms.get_key_rotation_status(KeyId=key_id)["KeyRotationEnabled"], f"{name}: key rotation is off")
        # The table.
        t = ddb.describe_table(TableName=o["TableName"])["Table"]
        p.check(t.get("BillingModeSummary", {}).get("BillingMode") == "PAY_PER_REQUEST", f"{name}: the table is not on-demand")
        keys = {k["AttributeName"]: k["KeyType"] for k in t["KeySchema"]}
        want = {"pk": "HASH", "sk": "RANGE"} if params.get("TableSortKey") else {"pk": "HASH"}
        p.check(keys == want, f"{name}: key schema {keys}, expected {want}")
        # (moto 5.2.5 does not apply PointInTimeRecoverySpecification from a
        # template; cfn-static checks the property.)
        if deps_name:
            p.check(o.get("DependencyTableName") == deps_name, f"{name}: DependencyTableName {o.get('DependencyTableName')}")
            dt = ddb.describe_table(TableName=deps_name)["Table"]
            dkeys = {k["AttributeName"]: k["KeyType"] for k in dt["KeySchema"]}
            p.check(dkeys == {"entity": "HASH", "dependent": "RANGE"}, f"{name}: dependency table keys {dkeys}")
            p.check(dt.get("BillingModeSummary", {}).get("BillingMode") == "PAY_PER_REQUEST", f"{name}: the dependency table is not on-demand")
        # The topic.
        ta = sns.get_topic_attributes(TopicArn=o["TopicArn"])["Attributes"]
        p.check(ta.get("KmsMasterKeyId") == o["KmsKeyArn"], f"{name}: the topic is not encrypted with the stack's key")

        # The values bucket: there, encrypted.
        if values_bucket:
            s3 = boto3.client("s3", **kw)
            enc = s3.get_bucket_encryption(Bucket=values_bucket)["ServerSideEncryptionConfiguration"]["Rules"]
            p.check(enc and enc[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256", f"{name}: the values bucket is not encrypted")
            # (moto 5.2.5 applies neither PublicAccessBlockConfiguration nor
            # LifecycleConfiguration from a template; cfn-static checks both.)

        # The role's policy is deploy/iam's, with this stack's values.
        values = {
            "AWS_REGION": region, "AWS_ACCOUNT_ID": o["QueueArn"].split(":")[4], "QUEUE_NAME": qname,
            "DLQ_NAME": dname, "TABLE_NAME": tname, "TOPIC_NAME": topic_name,
            "DEPENDENCY_TABLE_NAME": deps_name,
            "KMS_KEY_ID": o["KmsKeyArn"].rsplit("/", 1)[1],
            "S3_BUCKET": values_bucket, "S3_PREFIX": "triggered-cache/",
        }
        role_name = o["RoleArn"].rsplit("/", 1)[1]
        attached = [a["PolicyArn"] for a in iam.list_attached_role_policies(RoleName=role_name)["AttachedPolicies"]]
        want_attached = sorted([o["DaemonPolicyArn"]] + ([o["DependencyPolicyArn"]] if deps_name else [])
                               + ([o["ValuesPolicyArn"]] if values_bucket else []))
        p.check(sorted(attached) == want_attached, f"{name}: the role has policies {attached}")
        p.check(not iam.list_role_policies(RoleName=role_name)["PolicyNames"], f"{name}: the role has inline policies")
        daemon_doc = policy_document(iam, o["DaemonPolicyArn"])
        if deps_name:
            # The dependency statement lives in its own conditional policy.
            extra = policy_document(iam, o["DependencyPolicyArn"])["Statement"]
            daemon_doc = dict(daemon_doc, Statement=daemon_doc["Statement"][:3] + extra + daemon_doc["Statement"][3:])
        if values_bucket:
            # The S3 statements live in their own conditional policy.
            daemon_doc = dict(daemon_doc, Statement=daemon_doc["Statement"] + policy_document(iam, o["ValuesPolicyArn"])["Statement"])
        want_doc = render_json(POLICY, values)
        if not deps_name:
            # Without dependency tracking the stack leaves that statement out.
            want_doc["Statement"] = [st for st in want_doc["Statement"] if st.get("Sid") != "DependencyEdges"]
        if not values_bucket:
            # Without a values bucket, the S3 statements.
            want_doc["Statement"] = [st for st in want_doc["Statement"] if st.get("Sid") not in S3_SIDS]
        p.check(daemon_doc == want_doc, f"{name}: the stack's daemon policy differs from {POLICY}:\n{json.dumps(daemon_doc, indent=1)}")
        if "OperatorPolicyArn" in o:
            op_doc = policy_document(iam, o["OperatorPolicyArn"])
            want_op = render_json(OPERATOR_POLICY, values)
            if not values_bucket:
                want_op["Statement"] = [st for st in want_op["Statement"] if st.get("Sid") not in S3_SIDS]
            p.check(op_doc == want_op, f"{name}: the stack's operator policy differs from {OPERATOR_POLICY}")
        trust = iam.get_role(RoleName=role_name)["Role"]["AssumeRolePolicyDocument"]
        trust = json.loads(trust) if isinstance(trust, str) else trust
        principals = [json.dumps(s["Principal"], sort_keys=True) for s in trust["Statement"]]
        if params.get("Platform") == "ecs":
            p.check(principals == ['{"Service": "ecs-tasks.amazonaws.com"}'], f"{name}: trust {principals}")
            ex = iam.get_role(RoleName=o["ExecutionRoleArn"].rsplit("/", 1)[1])["Role"]
            p.check(ex["Arn"] == o["ExecutionRoleArn"], f"{name}: no execution role")
        else:
            p.check(principals == [json.dumps({"Federated": oidc}), json.dumps({"AWS": keda})], f"{name}: trust {principals}")
            cond = trust["Statement"][0].get("Condition", {}).get("StringEquals", {})
            issuer = oidc.split("oidc-provider/", 1)[1]
            p.check(cond.get(f"{issuer}:sub") == "system:serviceaccount:triggered-cache:triggered-cache", f"{name}: IRSA subject {cond}")
            p.check(cond.get(f"{issuer}:aud") == "sts.amazonaws.com", f"{name}: IRSA audience {cond}")

        if params.get("Platform") == "ecs":
            # The ECS documents, filled in with this stack's outputs (and a
            # VPC of the emulator's), register.
            ec2 = boto3.client("ec2", **kw)
            vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
            subnets = [
                ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=f"{region}{az}")["Subnet"]["SubnetId"]
                for i, az in ((1, "a"), (2, "b"))
            ]
            sg = ec2.create_security_group(GroupName="triggered-cache", Description="triggered-cache tasks", VpcId=vpc)["GroupId"]
            ev = {
                **EXAMPLE_VARS, "AWS_REGION": region, "QUEUE_URL": o["QueueUrl"], "DLQ_URL": o["DeadLetterQueueUrl"],
                "TABLE_NAME": o["TableName"], "TOPIC_ARN": o["TopicArn"], "TASK_ROLE_ARN": o["RoleArn"],
                "EXECUTION_ROLE_ARN": o["ExecutionRoleArn"], "LOG_GROUP": o["LogGroupName"], "QUEUE_NAME": qname,
                "SUBNET_A": subnets[0], "SUBNET_B": subnets[1], "SECURITY_GROUP": sg,
            }
            docs = ecs_documents(ev)
            (out_dir / "task-definition.json").write_text(json.dumps(docs["task-definition"], indent=2))
            ecs.create_cluster(clusterName=ev["CLUSTER"])
            td = ecs.register_task_definition(**docs["task-definition"])["taskDefinition"]
            c = td["containerDefinitions"][0]
            p.check(td["taskRoleArn"] == o["RoleArn"] and c["stopTimeout"] == 60, f"{name}: registered task definition {td['taskDefinitionArn']}")
            svc = ecs.create_service(**docs["service-definition"])["service"]
            p.check(svc["serviceName"] == "triggered-cache", f"{name}: service {svc.get('serviceName')}")
            aas.register_scalable_target(**docs["scalable-target"])
            aas.put_scaling_policy(**docs["scaling-policy"])
            pols = aas.describe_scaling_policies(ServiceNamespace="ecs")["ScalingPolicies"]
            p.check(len(pols) == 1, f"{name}: scaling policies {len(pols)}")
    return p.finish()
