/*
 * rules: keyword classification and hint writing (see rules.h). Keywords are matched on
 * text_normalize output rewritten the way an agent reads WhatsApp ("vc"→"voce",
 * "net"→"internet", "ta"→"esta", "canselar"→"cancelar", "oii"→"oi") and padded with
 * spaces, so a pattern " cobr" means "a word starting with cobr" and accents, case,
 * punctuation, slang and one-letter typos never matter. A keyword late in a long message
 * or right after a request verb ("quero", "preciso", "manda") weighs more than one in the
 * preamble; "cancelar" after "se"/"senão"/"ou" is a threat and weighs little; a judgement
 * ("ruim", "um lixo") says a fault after a service and a complaint after the people, and
 * the people as the subject of a past-tense verb tell how the customer was treated; what
 * follows "cancelar"/"tirar" is the object that ends, not a sale; what follows "não quero"
 * is refused. The confidence falls with the share of the message no keyword read. Hints are
 * templates whose [optional parts] appear only when the detail they name ({valor},
 * {protocolo}…) was found.
 */
#include "rules.h"

#include "text.h"

#include <ctype.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define RULES_NORM_MAX 2048 /* longer messages are classified on their first 2 KiB */
#define RULES_CANON_MAX (RULES_NORM_MAX * 2) /* slang expands: "pfv" -> "por favor" */
#define RULES_LONG_WORDS 10   /* from this many words on, position in the message counts */
#define RULES_LATE_BONUS 0.6  /* a keyword at the very end weighs 1.6x one at the very start */
#define RULES_REQUEST_BONUS 2 /* a keyword right after a request verb */
#define RULES_THREAT_WEIGHT 1 /* "se não resolver vou cancelar": cancel is a threat, not the request */
#define RULES_VERDICT_WEIGHT 4 /* "a internet está uma porcaria": the service judged, a fault */
#define RULES_VERDICT_WINDOW 32 /* bytes between the thing judged and the judgement */
#define RULES_DETAIL_MAX 48
#define RULES_OBJECT_WINDOW 20 /* bytes between "cancelar"/"tirar" and the thing to end */
#define RULES_REFUSAL_WINDOW 14 /* bytes between "não quero" and the thing refused */
#define RULES_UNREAD_PENALTY 1.0 /* confidence lost per share of unread content words past the free half */
#define RULES_UNREAD_FREE 0.5
#define RULES_STORY_WEIGHT 3   /* "o técnico veio…", "o atendente disse…": the treatment is the subject */

/* One keyword: its weight towards an intent and, optionally, a hint more precise than
 * the intent's generic one (the matched keyword with a hint and the highest weight wins). */
typedef struct {
	const char *pattern;
	rules_intent_t intent;
	int weight;
	const char *hint;
} rules_keyword_t;

typedef enum { REASON_HEALTH, REASON_FRAUD, REASON_LEGAL, REASON_URGENCY, REASON_COUNT } rules_reason_t;

typedef struct {
	const char *pattern;
	rules_reason_t reason;
	const char *const *not_after; /* NULL-terminated: right after one of these the phrase does not count */
} rules_critical_t;

/* Details lifted from the message to make hints concrete; empty string = not found. */
typedef struct {
	char valor[RULES_DETAIL_MAX];     /* "R$ 129,00" */
	char protocolo[RULES_DETAIL_MAX]; /* "2024-88123" */
	char bairro[RULES_DETAIL_MAX];    /* "Boa Viagem" */
	char mega[RULES_DETAIL_MAX];      /* "300" (speed in Mbps) */
	char mes[RULES_DETAIL_MAX];       /* "março" */
	char dias[RULES_DETAIL_MAX];      /* "10" (days without service) */
	char vezes[RULES_DETAIL_MAX];     /* "3" (previous contacts) */
} rules_details_t;

static const char *const rules_intent_names[] = {"billing", "sales", "outage", "complaint", "cancel", "other"};
static const char *const rules_reason_names[REASON_COUNT] = {"health", "fraud", "legal", "urgency"};

/* Domain of the queue a message came in on, and the intent it implies. */
static const struct {
	const char *domain;
	rules_intent_t intent;
} rules_domains[] = {
	{"financeiro", INTENT_BILLING}, {"comercial", INTENT_SALES},   {"suporte", INTENT_OUTAGE},
	{"ouvidoria", INTENT_COMPLAINT}, {"cancelamento", INTENT_CANCEL},
};

/* Without a domain to break a tie, the intent with the costlier miss wins: losing the
 * customer, then an unhandled complaint, then a customer without service. */
static const rules_intent_t rules_tie_order[] = {INTENT_CANCEL, INTENT_COMPLAINT, INTENT_OUTAGE, INTENT_BILLING,
						 INTENT_SALES};

static const char H_SEGUNDA_VIA[] =
	"Envie a segunda via[ do boleto de {mes}] aqui mesmo, com a linha digitável ou o código PIX, e confirme o "
	"e-mail cadastrado; se já venceu, informe os juros e a nova data de vencimento.";
static const char H_PARCELAR[] =
	"Consulte as condições de parcelamento da fatura em aberto e ofereça a proposta com entrada e número de "
	"parcelas; lembre ao cliente que o acordo evita a suspensão do serviço.";
static const char H_VALOR_ERRADO[] =
	"Peça o mês de referência e compare a fatura[ de {valor}] com o plano contratado item por item; se houver "
	"erro, abra a contestação e informe o protocolo e o prazo do crédito na próxima fatura.";
static const char H_DUPLICIDADE[] =
	"Verifique no histórico se houve cobrança em duplicidade[ de {valor}]; confirmando, registre o estorno ou "
	"crédito na próxima fatura e passe o protocolo ao cliente.";
static const char H_PAGAMENTO_NAO_BAIXADO[] =
	"Localize o pagamento[ de {valor}] pela data e forma de pagamento; se não houver baixa, peça o comprovante "
	"e abra a baixa manual para evitar bloqueio por inadimplência.";
static const char H_PIX[] =
	"Envie o código PIX copia e cola ou a linha digitável da fatura em aberto e peça o comprovante depois do "
	"pagamento, para agilizar a baixa.";
static const char H_DATA_VENCIMENTO[] =
	"Consulte as datas de vencimento disponíveis e faça a troca; avise que a próxima fatura pode vir com "
	"valor proporcional aos dias de diferença.";
static const char H_NOTA_FISCAL[] =
	"Envie a nota fiscal[ de {mes}] aqui no chat ou para o e-mail cadastrado e confirme se o CPF/CNPJ e o "
	"endereço da nota estão corretos.";
static const char H_ESTORNO[] =
	"Confirme o valor[ ({valor})] e o motivo do estorno, registre a solicitação com protocolo e informe o prazo "
	"e a forma de devolução (crédito em fatura ou depósito).";

static const char H_PRECO[] =
	"Informe o valor mensal do plano, o que está incluso e a fidelidade; peça o CEP para confirmar a cobertura "
	"e já ofereça o agendamento da instalação.";
static const char H_UPGRADE[] =
	"Consulte o plano atual do cliente e ofereça o upgrade com a diferença de valor mensal; confirme se a troca "
	"renova a fidelidade e em quanto tempo a nova velocidade é liberada.";
static const char H_VELOCIDADES[] =
	"Apresente os planos[ de {mega} mega] e a opção imediatamente acima, com preço e fidelidade; confirme a "
	"cobertura no endereço antes de fechar.";
static const char H_COBERTURA[] =
	"Peça o CEP e o número do endereço para consultar a viabilidade[ no bairro {bairro}]; havendo cobertura, "
	"apresente os planos e ofereça o agendamento da instalação.";
static const char H_PROMOCAO[] =
	"Apresente a promoção vigente para novos clientes (desconto e por quanto tempo vale) e peça CEP e CPF "
	"para verificar a cobertura e seguir com a contratação.";
static const char H_PORTABILIDADE_ENTRADA[] =
	"Explique que a portabilidade é gratuita e leva até 3 dias úteis; peça o número e o CPF do titular e "
	"faça a contratação do plano junto com o pedido.";

static const char H_QUEDA[] =
	"Verifique se há falha massiva ou manutenção na região do cliente; se não houver, peça para desligar o "
	"roteador por 30 segundos e, se não voltar, abra chamado técnico.";
static const char H_SEM_SINAL[] =
	"Consulte se há rompimento ou manutenção na região e peça para conferir os cabos e as luzes do roteador; "
	"sem sinal depois de reiniciar, abra visita técnica.";
static const char H_LENTIDAO[] =
	"Peça um teste de velocidade com o computador no cabo[ e compare com os {mega} mega contratados]; abaixo "
	"de 80% do contratado, reinicie o equipamento remotamente e abra chamado se não normalizar.";
static const char H_INSTAVEL[] =
	"Pergunte se as quedas acontecem só no Wi-Fi ou também no cabo e confira o histórico de desconexões do "
	"equipamento; quedas frequentes justificam troca do roteador ou visita técnica.";
static const char H_ROTEADOR[] =
	"Confirme o endereço e peça para reiniciar o roteador; se a luz continuar vermelha, abra chamado técnico "
	"com prioridade.";
static const char H_WIFI[] =
	"Pergunte onde fica o roteador e quantos aparelhos estão conectados; oriente a usar a rede 5 GHz perto "
	"do roteador e, se o sinal seguir fraco, ofereça um repetidor ou visita técnica.";

static const char H_RECLAMACAO_FORMAL[] =
	"Registre a reclamação formal, informe o número do protocolo e o prazo de resposta; pergunte o que "
	"aconteceu para já encaminhar a solução.";
static const char H_REINCIDENTE[] =
	"Reconheça os contatos anteriores[ ({vezes} ligações)] sem pedir que o cliente repita tudo: leia o "
	"histórico, assuma o caso e dê um prazo concreto de retorno.";
static const char H_PROTOCOLO[] =
	"Consulte o protocolo[ {protocolo}] e diga em que etapa está; se o prazo venceu, escale ao setor "
	"responsável e combine com o cliente uma data de retorno.";
static const char H_TECNICO_FALTOU[] =
	"Peça desculpas pela visita perdida, verifique o motivo no agendamento e ofereça reagendamento prioritário "
	"no primeiro horário disponível.";
static const char H_INSATISFEITO[] =
	"Ouça sem interromper, peça desculpas e pergunte o que gerou a insatisfação; registre o protocolo e "
	"proponha uma solução concreta com prazo.";

static const char H_MULTA[] =
	"Consulte a data de fim da fidelidade e informe o valor exato da multa proporcional; apresente uma oferta "
	"de retenção antes de confirmar o cancelamento.";
static const char H_OPERADORA[] =
	"Pergunte o que a outra operadora ofereceu e veja se há contraproposta de retenção; sem acordo, siga com o "
	"cancelamento e informe multa, protocolo e data de retirada dos equipamentos.";
static const char H_PORTABILIDADE_SAIDA[] =
	"Explique que a portabilidade é pedida na nova operadora e não exige cancelar antes; pergunte o motivo da "
	"saída e ofereça uma condição de retenção, informando se há multa de fidelidade.";

/* Generic hint of each intent, used when no matched keyword carries its own. */
static const char *const rules_generic_hints[] = {
	[INTENT_BILLING] = "Abra a fatura do cliente no sistema e confira com ele[ o valor de {valor}] item por item; se "
			   "houver erro, abra a contestação e informe o prazo do ajuste.",
	[INTENT_SALES] = "Entenda o uso do cliente (quantas pessoas, home office, streaming) e apresente o plano "
			 "adequado com preço, fidelidade e prazo de instalação.",
	[INTENT_OUTAGE] = "Confirme o endereço e verifique se há falha na região; peça para reiniciar o roteador e, se "
			  "o problema continuar, abra chamado técnico.",
	[INTENT_COMPLAINT] = "Peça desculpas pelo transtorno, registre a reclamação com protocolo e assuma o caso até a "
			     "solução, informando o próximo passo e o prazo.",
	[INTENT_CANCEL] = "Antes de cancelar, pergunte o motivo e ofereça uma alternativa de retenção (desconto, troca "
			  "de plano ou visita técnica); se o cliente mantiver o pedido, registre o cancelamento e "
			  "informe o protocolo.",
	[INTENT_OTHER] = "Pergunte de forma objetiva como pode ajudar e, se o assunto for de outro setor, transfira "
			 "a conversa já com um resumo.",
};

static const char H_GREETING[] = "Cumprimente o cliente, apresente-se pelo nome e pergunte como pode ajudar.";
static const char H_ACK[] =
	"O cliente apenas confirmou; verifique se restou alguma dúvida e, se não, encerre com um resumo do que "
	"foi combinado.";
static const char H_EMPTY[] =
	"Mensagem sem texto legível (emoji, pontuação ou mídia); pergunte educadamente como pode ajudar.";

static const char *const rules_critical_hints[REASON_COUNT] = {
	[REASON_HEALTH] = "Prioridade máxima: há risco à saúde de alguém que depende da conexão. Abra chamado técnico "
			  "emergencial agora, informe o prazo ao cliente e acione o supervisor.",
	[REASON_FRAUD] = "Possível fraude: não peça senhas nem dados completos do cartão; registre a contestação[ de "
			 "{valor}], oriente o bloqueio do cartão no banco e encaminhe ao time de prevenção a fraudes.",
	[REASON_LEGAL] = "Ameaça jurídica: mantenha tom formal, não discuta culpa nem prometa fora da política; registre "
			 "tudo com protocolo e acione o supervisor ou a ouvidoria agora.",
	[REASON_URGENCY] = "Cliente sinalizou urgência: priorize este atendimento, resolva ou escale agora e informe um "
			   "prazo claro de retorno.",
};
static const char H_THREAT[] =
	" O cliente ameaça cancelar: resolva isso primeiro e só fale em retenção se ele insistir.";
static const char H_URGENT_OUTAGE[] =
	"Urgente: cliente sem serviço[ há {dias} dias] e dependente da conexão; verifique falha na região, abra "
	"chamado técnico com prioridade máxima e informe o prazo de atendimento.";

/* The keyword table. Weights: 4-5 a phrase that settles the intent, 3 a strong word,
 * 2 a word common to two intents, 1 a hint of context ("mega" is sales and outage); a
 * negative weight takes back what a word of the intent gave when the phrase around it
 * tells a story rather than the request ("que eu cancelei", "meu plano de 500"). */
static const rules_keyword_t rules_keywords[] = {
	/* billing */
	{" fatura", INTENT_BILLING, 3, NULL},
	{" boleto", INTENT_BILLING, 3, NULL},
	{" segunda via", INTENT_BILLING, 5, H_SEGUNDA_VIA},
	{" 2 via", INTENT_BILLING, 5, H_SEGUNDA_VIA},
	{" cobranca", INTENT_BILLING, 3, NULL},
	{" cobrad", INTENT_BILLING, 3, NULL},
	{" cobrando", INTENT_BILLING, 3, NULL},
	{" cobraram", INTENT_BILLING, 3, NULL},
	{" pagamento", INTENT_BILLING, 3, NULL},
	{" paguei", INTENT_BILLING, 3, NULL},
	{" pagar ", INTENT_BILLING, 2, NULL},
	{" parcel", INTENT_BILLING, 3, H_PARCELAR},
	{" acordo", INTENT_BILLING, 2, H_PARCELAR},
	{" valor errado", INTENT_BILLING, 4, H_VALOR_ERRADO},
	{" veio errad", INTENT_BILLING, 3, H_VALOR_ERRADO},
	{" veio com valor", INTENT_BILLING, 3, H_VALOR_ERRADO},
	{" veio alt", INTENT_BILLING, 3, H_VALOR_ERRADO},
	{" duas vezes", INTENT_BILLING, 1, H_DUPLICIDADE},
	{" duplicidade", INTENT_BILLING, 4, H_DUPLICIDADE},
	{" duplicad", INTENT_BILLING, 3, H_DUPLICIDADE},
	{" cobrado 2 vezes", INTENT_BILLING, 2, H_DUPLICIDADE},
	{" nao foi reconhecid", INTENT_BILLING, 3, H_PAGAMENTO_NAO_BAIXADO},
	{" nao caiu", INTENT_BILLING, 1, H_PAGAMENTO_NAO_BAIXADO},
	{" nao consta", INTENT_BILLING, 2, H_PAGAMENTO_NAO_BAIXADO},
	{" comprovante", INTENT_BILLING, 2, H_PAGAMENTO_NAO_BAIXADO},
	{" estorn", INTENT_BILLING, 4, H_ESTORNO},
	{" reembols", INTENT_BILLING, 4, H_ESTORNO},
	{" devolucao do valor", INTENT_BILLING, 4, H_ESTORNO},
	{" debito automatico", INTENT_BILLING, 4, NULL},
	{" vencimento", INTENT_BILLING, 3, NULL},
	{" data de vencimento", INTENT_BILLING, 2, H_DATA_VENCIMENTO},
	{" mudar o vencimento", INTENT_BILLING, 4, H_DATA_VENCIMENTO},
	{" trocar o vencimento", INTENT_BILLING, 4, H_DATA_VENCIMENTO},
	{" vencid", INTENT_BILLING, 2, H_SEGUNDA_VIA},
	{" venceu", INTENT_BILLING, 2, H_SEGUNDA_VIA},
	{" juros", INTENT_BILLING, 3, NULL},
	{" atrasad", INTENT_BILLING, 1, NULL},
	{" em atraso", INTENT_BILLING, 2, NULL},
	{" nota fiscal", INTENT_BILLING, 4, H_NOTA_FISCAL},
	{" pix", INTENT_BILLING, 2, H_PIX},
	{" chave pix", INTENT_BILLING, 2, H_PIX},
	{" codigo de barras", INTENT_BILLING, 3, H_SEGUNDA_VIA},
	{" linha digitavel", INTENT_BILLING, 3, H_SEGUNDA_VIA},
	{" conta veio", INTENT_BILLING, 3, H_VALOR_ERRADO},
	{" veio muito", INTENT_BILLING, 3, H_VALOR_ERRADO},
	{" conta desse mes", INTENT_BILLING, 2, NULL},
	{" conta deste mes", INTENT_BILLING, 2, NULL},
	{" valor ", INTENT_BILLING, 1, NULL},
	/* sales */
	{" plano", INTENT_SALES, 3, H_PRECO},
	{" contratar", INTENT_SALES, 3, H_PROMOCAO},
	{" contratacao", INTENT_SALES, 3, H_PROMOCAO},
	{" assinar", INTENT_SALES, 2, H_PROMOCAO},
	{" desconto", INTENT_SALES, 3, H_PROMOCAO},
	{" promocao", INTENT_SALES, 3, H_PROMOCAO},
	{" oferta", INTENT_SALES, 2, H_PROMOCAO},
	{" upgrade", INTENT_SALES, 4, H_UPGRADE},
	{" aumentar a velocidade", INTENT_SALES, 4, H_UPGRADE},
	{" mudar de plano", INTENT_SALES, 3, H_UPGRADE},
	{" trocar de plano", INTENT_SALES, 3, H_UPGRADE},
	{" trocar o plano", INTENT_SALES, 3, H_UPGRADE},
	{" planos de", INTENT_SALES, 2, H_VELOCIDADES},
	{" mega ", INTENT_SALES, 1, NULL},
	{" megas ", INTENT_SALES, 1, NULL},
	{" giga", INTENT_SALES, 1, NULL},
	{" fibra", INTENT_SALES, 1, NULL},
	{" quanto custa", INTENT_SALES, 4, H_PRECO},
	{" quanto e o plano", INTENT_SALES, 4, H_PRECO},
	{" preco", INTENT_SALES, 3, H_PRECO},
	{" mensalidade", INTENT_SALES, 2, H_PRECO},
	{" combo", INTENT_SALES, 2, NULL},
	{" pacote", INTENT_SALES, 2, NULL},
	{" atendem no", INTENT_SALES, 4, H_COBERTURA},
	{" atendem na", INTENT_SALES, 4, H_COBERTURA},
	{" atendem em", INTENT_SALES, 4, H_COBERTURA},
	{" atende no", INTENT_SALES, 4, H_COBERTURA},
	{" atende na", INTENT_SALES, 4, H_COBERTURA},
	{" bairro", INTENT_SALES, 2, H_COBERTURA},
	{" cobertura", INTENT_SALES, 3, H_COBERTURA},
	{" viabilidade", INTENT_SALES, 3, H_COBERTURA},
	{" disponivel na minha", INTENT_SALES, 3, H_COBERTURA},
	{" chega na minha rua", INTENT_SALES, 4, H_COBERTURA},
	{" portabilidade", INTENT_SALES, 2, H_PORTABILIDADE_ENTRADA},
	{" trazer meu numero", INTENT_SALES, 4, H_PORTABILIDADE_ENTRADA},
	{" portabilidade para voces", INTENT_SALES, 4, H_PORTABILIDADE_ENTRADA},
	{" quero ser cliente", INTENT_SALES, 4, H_PROMOCAO},
	{" colocar internet", INTENT_SALES, 4, H_COBERTURA},
	{" instalar internet", INTENT_SALES, 4, H_COBERTURA},
	{" quero internet", INTENT_SALES, 4, H_COBERTURA},
	{" internet na minha casa nova", INTENT_SALES, 2, H_COBERTURA},
	/* outage */
	{" internet caiu", INTENT_OUTAGE, 5, H_QUEDA},
	{" caiu", INTENT_OUTAGE, 2, H_QUEDA},
	{" sem internet", INTENT_OUTAGE, 5, H_QUEDA},
	{" sem conexao", INTENT_OUTAGE, 5, H_QUEDA},
	{" sem servico", INTENT_OUTAGE, 4, H_QUEDA},
	{" fora do ar", INTENT_OUTAGE, 4, H_QUEDA},
	{" parou de funcionar", INTENT_OUTAGE, 4, H_QUEDA},
	{" nao funciona", INTENT_OUTAGE, 3, H_QUEDA},
	{" nao esta funcionando", INTENT_OUTAGE, 3, H_QUEDA},
	{" nao conecta", INTENT_OUTAGE, 3, H_QUEDA},
	{" nao carrega", INTENT_OUTAGE, 3, H_QUEDA},
	{" nao consigo acessar", INTENT_OUTAGE, 3, H_QUEDA},
	{" nao navega", INTENT_OUTAGE, 3, H_QUEDA},
	{" internet", INTENT_OUTAGE, 1, NULL}, /* alone it is usually a complaint about the service */
	{" sem sinal", INTENT_OUTAGE, 5, H_SEM_SINAL},
	{" sinal", INTENT_OUTAGE, 1, H_SEM_SINAL},
	{" lenta", INTENT_OUTAGE, 4, H_LENTIDAO},
	{" lento", INTENT_OUTAGE, 4, H_LENTIDAO},
	{" lentidao", INTENT_OUTAGE, 4, H_LENTIDAO},
	{" nao passa de", INTENT_OUTAGE, 2, H_LENTIDAO},
	{" velocidade baixa", INTENT_OUTAGE, 4, H_LENTIDAO},
	{" teste de velocidade", INTENT_OUTAGE, 3, H_LENTIDAO},
	{" ping", INTENT_OUTAGE, 2, H_LENTIDAO},
	{" travando", INTENT_OUTAGE, 3, H_LENTIDAO},
	{" conexao cai", INTENT_OUTAGE, 5, H_INSTAVEL},
	{" cai toda hora", INTENT_OUTAGE, 4, H_INSTAVEL},
	{" caindo", INTENT_OUTAGE, 4, H_INSTAVEL},
	{" oscila", INTENT_OUTAGE, 4, H_INSTAVEL},
	{" instavel", INTENT_OUTAGE, 4, H_INSTAVEL},
	{" desconecta", INTENT_OUTAGE, 4, H_INSTAVEL},
	{" queda", INTENT_OUTAGE, 3, H_INSTAVEL},
	{" roteador", INTENT_OUTAGE, 3, H_ROTEADOR},
	{" modem", INTENT_OUTAGE, 3, H_ROTEADOR},
	{" luz vermelha", INTENT_OUTAGE, 5, H_ROTEADOR},
	{" luz los", INTENT_OUTAGE, 5, H_ROTEADOR},
	{" piscando", INTENT_OUTAGE, 2, H_ROTEADOR},
	{" wifi", INTENT_OUTAGE, 2, H_WIFI},
	{" wi fi", INTENT_OUTAGE, 2, H_WIFI},
	{" sinal fraco", INTENT_OUTAGE, 3, H_WIFI},
	/* complaint */
	{" reclamacao", INTENT_COMPLAINT, 4, H_RECLAMACAO_FORMAL},
	{" reclamar", INTENT_COMPLAINT, 4, H_RECLAMACAO_FORMAL},
	{" ouvidoria", INTENT_COMPLAINT, 4, H_RECLAMACAO_FORMAL},
	{" pessim", INTENT_COMPLAINT, 3, H_INSATISFEITO},
	{" horrivel", INTENT_COMPLAINT, 3, H_INSATISFEITO},
	{" absurdo", INTENT_COMPLAINT, 2, H_INSATISFEITO},
	{" descaso", INTENT_COMPLAINT, 3, H_INSATISFEITO},
		{" falta de respeito", INTENT_COMPLAINT, 4, H_INSATISFEITO},
	{" desrespeito", INTENT_COMPLAINT, 4, H_INSATISFEITO},
		{" mal atendid", INTENT_COMPLAINT, 3, H_INSATISFEITO},
	{" atendimento ruim", INTENT_COMPLAINT, 3, H_INSATISFEITO},
	{" ninguem resolve", INTENT_COMPLAINT, 5, H_REINCIDENTE},
	{" nao resolve", INTENT_COMPLAINT, 3, H_REINCIDENTE},
	{" nunca resolve", INTENT_COMPLAINT, 4, H_REINCIDENTE},
	{" ja liguei", INTENT_COMPLAINT, 2, H_REINCIDENTE},
	{" ja entrei em contato", INTENT_COMPLAINT, 2, H_REINCIDENTE},
	{" toda vez", INTENT_COMPLAINT, 1, H_REINCIDENTE},
	{" vez que", INTENT_COMPLAINT, 2, H_REINCIDENTE},
	{" abri chamado", INTENT_COMPLAINT, 2, H_REINCIDENTE},
	{" abri um chamado", INTENT_COMPLAINT, 2, H_REINCIDENTE},
	{" abro chamado", INTENT_COMPLAINT, 2, H_REINCIDENTE},
	{" e nada", INTENT_COMPLAINT, 2, H_REINCIDENTE},
	{" atendente", INTENT_COMPLAINT, 2, H_INSATISFEITO},
	{" desligou na minha cara", INTENT_COMPLAINT, 4, H_INSATISFEITO},
	{" porcaria", INTENT_COMPLAINT, 2, H_INSATISFEITO},
	{" protocolo", INTENT_COMPLAINT, 2, H_PROTOCOLO},
	{" sem resposta", INTENT_COMPLAINT, 3, H_PROTOCOLO},
	{" ninguem me retornou", INTENT_COMPLAINT, 4, H_PROTOCOLO},
	{" ninguem retornou", INTENT_COMPLAINT, 4, H_PROTOCOLO},
	{" nao apareceu", INTENT_COMPLAINT, 4, H_TECNICO_FALTOU},
	{" nao veio", INTENT_COMPLAINT, 2, H_TECNICO_FALTOU},
	{" visita marcada", INTENT_COMPLAINT, 2, H_TECNICO_FALTOU},
	{" furou", INTENT_COMPLAINT, 3, H_TECNICO_FALTOU},
	/* cancel */
	{" cancel", INTENT_CANCEL, 5, NULL},
	{" multa", INTENT_CANCEL, 3, H_MULTA},
	{" fidelidade", INTENT_CANCEL, 2, H_MULTA},
	{" rescindir", INTENT_CANCEL, 4, NULL},
	{" rescisao", INTENT_CANCEL, 4, NULL},
	{" encerrar o contrato", INTENT_CANCEL, 4, NULL},
	{" encerrar meu contrato", INTENT_CANCEL, 4, NULL},
	{" encerrar minha conta", INTENT_CANCEL, 4, NULL},
	{" encerrar o servico", INTENT_CANCEL, 4, NULL},
	{" sair da operadora", INTENT_CANCEL, 4, H_OPERADORA},
	{" sair dessa operadora", INTENT_CANCEL, 4, H_OPERADORA},
	{" desistir", INTENT_CANCEL, 3, NULL},
	{" nao quero mais", INTENT_CANCEL, 3, NULL},
	{" mudar de operadora", INTENT_CANCEL, 5, H_OPERADORA},
	{" trocar de operadora", INTENT_CANCEL, 5, H_OPERADORA},
	{" outra operadora", INTENT_CANCEL, 4, H_OPERADORA},
	{" portabilidade", INTENT_CANCEL, 2, H_PORTABILIDADE_SAIDA},
	{" levar meu numero", INTENT_CANCEL, 4, H_PORTABILIDADE_SAIDA},
	{" retirar os equipamentos", INTENT_CANCEL, 3, NULL},
	{" devolver o roteador", INTENT_CANCEL, 3, NULL},
	{" devolver o equipamento", INTENT_CANCEL, 3, NULL},
	{" portar meu numero", INTENT_CANCEL, 3, H_PORTABILIDADE_SAIDA},
	/* how customers write on WhatsApp: matched on the rewritten text (rules_canonicalize) */
	{" vence", INTENT_BILLING, 3, H_DATA_VENCIMENTO},
	{" quitar", INTENT_BILLING, 3, NULL},
	{" quitacao", INTENT_BILLING, 3, NULL},
	{" divida", INTENT_BILLING, 3, H_PARCELAR},
	{" negativad", INTENT_BILLING, 4, H_PAGAMENTO_NAO_BAIXADO},
	{" serasa", INTENT_BILLING, 4, H_PAGAMENTO_NAO_BAIXADO},
	{" negociar", INTENT_BILLING, 3, H_PARCELAR},
	{" em aberto", INTENT_BILLING, 3, H_PAGAMENTO_NAO_BAIXADO},
	{" deu baixa", INTENT_BILLING, 3, H_PAGAMENTO_NAO_BAIXADO},
	{" link de pagamento", INTENT_BILLING, 3, H_PIX},
	{" link pra pagar", INTENT_BILLING, 4, H_PIX},
	{" cartao de credito", INTENT_BILLING, 2, NULL},
	{" cobrar", INTENT_BILLING, 2, NULL},
	{" taxa", INTENT_BILLING, 3, H_VALOR_ERRADO},
	{" contestar", INTENT_BILLING, 3, H_VALOR_ERRADO},
	{" me cobraram", INTENT_BILLING, 2, H_VALOR_ERRADO},
	{" debit", INTENT_BILLING, 3, NULL},
	{" extrato", INTENT_BILLING, 3, NULL},
	{" aumentou", INTENT_BILLING, 2, H_VALOR_ERRADO},
	{" sem acesso", INTENT_OUTAGE, 4, H_QUEDA},
	{" nao volta", INTENT_OUTAGE, 4, H_QUEDA},
	{" volta a internet", INTENT_OUTAGE, 4, H_QUEDA},
	{" internet parou", INTENT_OUTAGE, 4, H_QUEDA},
	{" internet some", INTENT_OUTAGE, 4, H_INSTAVEL},
	{" carroca", INTENT_OUTAGE, 3, H_LENTIDAO},
	{" esta vindo", INTENT_OUTAGE, 3, H_LENTIDAO},
	{" lag", INTENT_OUTAGE, 3, H_LENTIDAO},
	{" fraq", INTENT_OUTAGE, 3, H_WIFI},
	{" fraco", INTENT_OUTAGE, 2, H_WIFI},
	{" nao pega", INTENT_OUTAGE, 3, H_SEM_SINAL},
	{" nao esta pegando", INTENT_OUTAGE, 3, H_SEM_SINAL},
	{" conectar", INTENT_OUTAGE, 3, H_QUEDA},
	{" conectado", INTENT_OUTAGE, 2, H_QUEDA},
	{" tecnico", INTENT_OUTAGE, 2, NULL},
	{" visita tecnica", INTENT_OUTAGE, 2, NULL},
	{" reparo", INTENT_OUTAGE, 3, NULL},
	{" manutencao", INTENT_OUTAGE, 3, H_QUEDA},
	{" luz", INTENT_OUTAGE, 2, H_ROTEADOR},
	{" pon ", INTENT_OUTAGE, 3, H_ROTEADOR},
	{" cabo", INTENT_OUTAGE, 2, H_SEM_SINAL},
	{" rompeu", INTENT_OUTAGE, 4, H_SEM_SINAL},
	{" rompid", INTENT_OUTAGE, 4, H_SEM_SINAL},
	{" cortada", INTENT_OUTAGE, 2, H_SEM_SINAL},
	{" reinicia sozinho", INTENT_OUTAGE, 4, H_ROTEADOR},
	{" desligando sozinho", INTENT_OUTAGE, 4, H_ROTEADOR},
	{" desconectando", INTENT_OUTAGE, 2, H_INSTAVEL},
	{" esquent", INTENT_OUTAGE, 2, H_ROTEADOR},
	{" mudo ", INTENT_OUTAGE, 3, NULL},
	{" mudas", INTENT_OUTAGE, 3, NULL},
	{" fica muda", INTENT_OUTAGE, 3, NULL},
	{" ficam muda", INTENT_OUTAGE, 3, NULL},
	{" nao da linha", INTENT_OUTAGE, 4, NULL},
	{" nao faz ligac", INTENT_OUTAGE, 4, NULL},
	{" sem linha", INTENT_OUTAGE, 4, NULL},
	{" canal", INTENT_OUTAGE, 1, H_SEM_SINAL},
	{" cai ", INTENT_OUTAGE, 3, H_INSTAVEL},
	{" ruim de noite", INTENT_OUTAGE, 3, H_LENTIDAO},
	{" aumentar minha", INTENT_SALES, 4, H_UPGRADE},
	{" plano maior", INTENT_SALES, 3, H_UPGRADE},
	{" mais rapid", INTENT_SALES, 4, H_UPGRADE},
	{" instalar", INTENT_SALES, 2, H_COBERTURA},
	{" instalacao", INTENT_SALES, 2, H_COBERTURA},
	{" instalam", INTENT_SALES, 3, H_COBERTURA},
	{" chega", INTENT_SALES, 2, H_COBERTURA},
	{" chegam", INTENT_SALES, 3, H_COBERTURA},
	{" atendem", INTENT_SALES, 3, H_COBERTURA},
	{" orcamento", INTENT_SALES, 3, H_PRECO},
	{" cliente de voces", INTENT_SALES, 2, H_PROMOCAO},
	{" adicionar", INTENT_SALES, 3, H_UPGRADE},
	{" ponto de tv", INTENT_SALES, 2, NULL},
	{" anuncio", INTENT_SALES, 3, H_PROMOCAO},
	{" propaganda", INTENT_SALES, 3, H_PROMOCAO},
	{" repetidor", INTENT_SALES, 3, NULL},
	{" concorrente", INTENT_SALES, 2, H_PROMOCAO},
	{" retorn", INTENT_COMPLAINT, 2, H_PROTOCOLO},
	{" ninguem me", INTENT_COMPLAINT, 3, H_PROTOCOLO},
	{" prometeram", INTENT_COMPLAINT, 3, H_REINCIDENTE},
	{" prometeu", INTENT_COMPLAINT, 3, H_REINCIDENTE},
	{" enrola", INTENT_COMPLAINT, 4, H_INSATISFEITO},
	{" enganad", INTENT_COMPLAINT, 4, H_INSATISFEITO},
	{" mentiu", INTENT_COMPLAINT, 4, H_INSATISFEITO},
	{" mentira", INTENT_COMPLAINT, 3, H_INSATISFEITO},
	{" faltou", INTENT_COMPLAINT, 4, H_TECNICO_FALTOU},
	{" nao vieram", INTENT_COMPLAINT, 4, H_TECNICO_FALTOU},
	{" nao vem", INTENT_COMPLAINT, 3, H_TECNICO_FALTOU},
	{" nunca voltou", INTENT_COMPLAINT, 4, H_TECNICO_FALTOU},
	{" nao cumpr", INTENT_COMPLAINT, 4, H_REINCIDENTE},
	{" bosta", INTENT_COMPLAINT, 3, H_INSATISFEITO},
	{" merda", INTENT_COMPLAINT, 1, H_INSATISFEITO},
	{" incompetent", INTENT_COMPLAINT, 4, H_INSATISFEITO},
	{" grosso", INTENT_COMPLAINT, 4, H_INSATISFEITO},
	{" grossa", INTENT_COMPLAINT, 4, H_INSATISFEITO},
	{" mal educad", INTENT_COMPLAINT, 4, H_INSATISFEITO},
	{" trataram mal", INTENT_COMPLAINT, 4, H_INSATISFEITO},
	{" chatead", INTENT_COMPLAINT, 3, H_INSATISFEITO},
	{" cansad", INTENT_COMPLAINT, 2, H_REINCIDENTE},
	{" reclame aqui", INTENT_COMPLAINT, 4, H_INSATISFEITO},
	{" desorganizad", INTENT_COMPLAINT, 3, H_INSATISFEITO},
	{" esperando", INTENT_COMPLAINT, 2, H_PROTOCOLO},
	{" transferiram", INTENT_COMPLAINT, 3, H_INSATISFEITO},
	{" providencia", INTENT_COMPLAINT, 3, H_INSATISFEITO},
	{" supervisor", INTENT_COMPLAINT, 2, H_INSATISFEITO},
	{" piorou", INTENT_COMPLAINT, 3, H_INSATISFEITO},
	{" formalizar", INTENT_COMPLAINT, 3, H_RECLAMACAO_FORMAL},
	{" registrado", INTENT_COMPLAINT, 1, H_RECLAMACAO_FORMAL},
	{" reclamo", INTENT_COMPLAINT, 3, H_REINCIDENTE},
	{" cade o tecnico", INTENT_COMPLAINT, 4, H_TECNICO_FALTOU},
	{" sair da", INTENT_CANCEL, 2, H_OPERADORA},
	{" arrependi", INTENT_CANCEL, 4, NULL},
	{" encerrar", INTENT_CANCEL, 3, NULL},
	/* a telecom's other services and bills: pay TV, mobile, landline, invoices of a company */
	{" nf ", INTENT_BILLING, 4, H_NOTA_FISCAL},
	{" nota ", INTENT_BILLING, 2, H_NOTA_FISCAL},
	{" reajuste", INTENT_BILLING, 4, H_VALOR_ERRADO},
	{" igpm", INTENT_BILLING, 3, H_VALOR_ERRADO},
	{" subiu", INTENT_BILLING, 3, H_VALOR_ERRADO},
	{" aumentaram", INTENT_BILLING, 3, H_VALOR_ERRADO},
	{" valor antigo", INTENT_BILLING, 3, H_VALOR_ERRADO},
	{" conta ", INTENT_BILLING, 2, NULL},
	{" contas ", INTENT_BILLING, 2, NULL},
	{" tarifa", INTENT_BILLING, 3, H_VALOR_ERRADO},
	{" interurbano", INTENT_BILLING, 3, H_VALOR_ERRADO},
	{" itens", INTENT_BILLING, 2, H_VALOR_ERRADO},
	{" recarga", INTENT_BILLING, 2, H_PAGAMENTO_NAO_BAIXADO},
	{" saldo", INTENT_BILLING, 3, H_PAGAMENTO_NAO_BAIXADO},
	{" dinheiro", INTENT_BILLING, 2, H_ESTORNO},
	{" de volta", INTENT_BILLING, 1, H_ESTORNO},
	{" nome sujo", INTENT_BILLING, 4, H_PAGAMENTO_NAO_BAIXADO},
	{" quitei", INTENT_BILLING, 3, H_PAGAMENTO_NAO_BAIXADO},
	{" reais", INTENT_BILLING, 2, NULL},
	{" meu cartao", INTENT_BILLING, 2, NULL},
	{" gerar", INTENT_BILLING, 2, H_SEGUNDA_VIA},
	{" mensalidade", INTENT_BILLING, 1, NULL},
	{" multa por atraso", INTENT_BILLING, 5, H_PAGAMENTO_NAO_BAIXADO},
	{" multa de atraso", INTENT_BILLING, 5, H_PAGAMENTO_NAO_BAIXADO},
	{" falta de pagamento", INTENT_BILLING, 4, H_PAGAMENTO_NAO_BAIXADO},
	{" ressarc", INTENT_BILLING, 4, H_ESTORNO},
	{" credito", INTENT_BILLING, 2, H_ESTORNO},
	{" abatid", INTENT_BILLING, 2, H_ESTORNO},
	{" em dobro", INTENT_BILLING, 3, H_DUPLICIDADE},
	{" a mais", INTENT_BILLING, 2, H_VALOR_ERRADO},
	{" cobrou", INTENT_BILLING, 3, NULL},
	{" cobram ", INTENT_BILLING, 3, NULL},
	{" indevid", INTENT_BILLING, 3, H_VALOR_ERRADO},
	{" pago ", INTENT_BILLING, 1, H_PAGAMENTO_NAO_BAIXADO},
	{" compensar", INTENT_BILLING, 3, H_PAGAMENTO_NAO_BAIXADO},
	{" vindo com", INTENT_BILLING, 3, H_VALOR_ERRADO},
	{" nao bate", INTENT_BILLING, 4, H_VALOR_ERRADO},
	{" sem o desconto", INTENT_BILLING, 5, H_VALOR_ERRADO},
	{" devendo", INTENT_BILLING, 4, H_PARCELAR},
	{" pendencia", INTENT_BILLING, 3, H_PAGAMENTO_NAO_BAIXADO},
	{" valor do meu plano", INTENT_BILLING, 3, H_VALOR_ERRADO}, /* "a mensalidade subiu": the bill as often as the price */
	{" sem area", INTENT_OUTAGE, 5, H_SEM_SINAL},
	{" sem telefone", INTENT_OUTAGE, 4, NULL},
	{" sem audio", INTENT_OUTAGE, 4, H_SEM_SINAL},
	{" sem som", INTENT_OUTAGE, 4, H_SEM_SINAL},
	{" sem imagem", INTENT_OUTAGE, 4, H_SEM_SINAL},
	{" imagem", INTENT_OUTAGE, 2, H_SEM_SINAL},
	{" tela preta", INTENT_OUTAGE, 4, H_SEM_SINAL},
	{" tela azul", INTENT_OUTAGE, 4, H_SEM_SINAL},
	{" tela", INTENT_OUTAGE, 1, H_SEM_SINAL},
	{" pixel", INTENT_OUTAGE, 3, H_SEM_SINAL},
	{" borrad", INTENT_OUTAGE, 3, H_LENTIDAO},
	{" trava ", INTENT_OUTAGE, 3, H_LENTIDAO},
	{" carregando", INTENT_OUTAGE, 3, H_LENTIDAO},
	{" nao abre", INTENT_OUTAGE, 3, H_QUEDA},
	{" nao roda", INTENT_OUTAGE, 3, H_QUEDA},
	{" parou de", INTENT_OUTAGE, 3, H_QUEDA},
	{" sumiu", INTENT_OUTAGE, 2, H_SEM_SINAL},
	{" sumiram", INTENT_OUTAGE, 2, H_SEM_SINAL},
	{" erro", INTENT_OUTAGE, 2, NULL},
	{" decodificador", INTENT_OUTAGE, 2, H_SEM_SINAL},
	{" tv box", INTENT_OUTAGE, 2, H_SEM_SINAL},
	{" controle remoto", INTENT_OUTAGE, 3, NULL},
	{" tomada", INTENT_OUTAGE, 2, H_ROTEADOR},
	{" upload", INTENT_OUTAGE, 3, H_LENTIDAO},
	{" download", INTENT_OUTAGE, 2, H_LENTIDAO},
	{" speedtest", INTENT_OUTAGE, 3, H_LENTIDAO},
	{" do contratado", INTENT_OUTAGE, 3, H_LENTIDAO},
	{" perda de pacote", INTENT_OUTAGE, 4, H_INSTAVEL},
	{" desconex", INTENT_OUTAGE, 4, H_INSTAVEL},
	{" 4g ", INTENT_OUTAGE, 2, H_SEM_SINAL},
	{" 3g ", INTENT_OUTAGE, 2, H_SEM_SINAL},
	{" dados moveis", INTENT_OUTAGE, 3, H_SEM_SINAL},
	{" nao recebo", INTENT_OUTAGE, 2, NULL},
	{" recebe ligac", INTENT_OUTAGE, 3, NULL},
	{" nao consigo", INTENT_OUTAGE, 1, NULL},
	{" previsao", INTENT_OUTAGE, 3, H_QUEDA},
	{" poste", INTENT_OUTAGE, 3, H_SEM_SINAL},
	{" fio ", INTENT_OUTAGE, 2, H_SEM_SINAL},
	{" caido", INTENT_OUTAGE, 3, H_SEM_SINAL},
	{" mb ", INTENT_OUTAGE, 2, H_LENTIDAO},
	{" sms", INTENT_OUTAGE, 2, NULL},
	{" navega", INTENT_OUTAGE, 2, H_QUEDA},
	{" sem tv", INTENT_OUTAGE, 3, H_SEM_SINAL},
	{" fora ", INTENT_OUTAGE, 1, H_QUEDA},
	{" rede movel", INTENT_OUTAGE, 3, H_SEM_SINAL},
	{" congela", INTENT_OUTAGE, 3, H_LENTIDAO},
	{" ocupado", INTENT_OUTAGE, 2, NULL},
	{" discagem", INTENT_OUTAGE, 4, NULL},
	{" apagad", INTENT_OUTAGE, 2, H_ROTEADOR},
	{" nao liga", INTENT_OUTAGE, 3, H_ROTEADOR},
	{" barrinha", INTENT_OUTAGE, 2, H_SEM_SINAL},
	{" abaixo", INTENT_OUTAGE, 3, H_LENTIDAO},
	{" velocidade", INTENT_OUTAGE, 1, H_LENTIDAO},
	{" chuvisco", INTENT_OUTAGE, 4, H_SEM_SINAL},
	{" cortand", INTENT_OUTAGE, 3, H_INSTAVEL},
	{" conseguindo", INTENT_OUTAGE, 1, NULL},
	{" trocar meu plano", INTENT_SALES, 4, H_UPGRADE},
	{" mudar meu plano", INTENT_SALES, 4, H_UPGRADE},
	{" mais internet", INTENT_SALES, 3, H_UPGRADE},
	{" quanto esta a ", INTENT_SALES, 3, H_PRECO}, /* the price of a thing, not "quanto está minha conta" */
	{" quanto esta o ", INTENT_SALES, 3, H_PRECO},
	{" quanto fica", INTENT_SALES, 3, H_PRECO},
	{" barat", INTENT_SALES, 3, H_PROMOCAO},
	{" opcoes", INTENT_SALES, 3, H_VELOCIDADES},
	{" condominio", INTENT_SALES, 2, H_COBERTURA},
	{" extra", INTENT_SALES, 2, NULL},
	{" valor da conta", INTENT_BILLING, 4, H_VALOR_ERRADO},
	{" reinici", INTENT_OUTAGE, 2, H_ROTEADOR},
	{" nao recebe", INTENT_OUTAGE, 3, NULL},
	{" nao manda", INTENT_OUTAGE, 2, NULL},
	{" consegue usar", INTENT_OUTAGE, 3, H_QUEDA},
	{" internet boa", INTENT_SALES, 3, H_PRECO},
	{" virar cliente", INTENT_SALES, 4, H_PROMOCAO},
	{" chamadas de emergencia", INTENT_OUTAGE, 4, H_SEM_SINAL},
	{" falha", INTENT_OUTAGE, 3, H_QUEDA},
	{" parado", INTENT_OUTAGE, 2, H_QUEDA},
	{" eco ", INTENT_OUTAGE, 3, NULL},
	{" chiado", INTENT_OUTAGE, 3, NULL},
	{" nao entra", INTENT_OUTAGE, 3, H_QUEDA},
	{" nenhum site", INTENT_OUTAGE, 4, H_QUEDA},
	{" pagina", INTENT_OUTAGE, 2, H_LENTIDAO},
	{" pra abrir", INTENT_OUTAGE, 2, H_LENTIDAO},
	{" via radio", INTENT_SALES, 3, H_COBERTURA},
	{" zona rural", INTENT_SALES, 3, H_COBERTURA},
	{" 5g ", INTENT_SALES, 2, H_COBERTURA},
	{" conta de ", INTENT_BILLING, 2, NULL},
	{" caem", INTENT_OUTAGE, 3, H_INSTAVEL},
	{" perda de", INTENT_OUTAGE, 3, H_INSTAVEL},
	{" velocidades", INTENT_SALES, 3, H_VELOCIDADES},
	{" disponiveis", INTENT_SALES, 3, H_VELOCIDADES},
	{" numero pra voces", INTENT_SALES, 4, H_PORTABILIDADE_ENTRADA},
	{" numero para voces", INTENT_SALES, 4, H_PORTABILIDADE_ENTRADA},
	{" sozinh", INTENT_OUTAGE, 2, H_ROTEADOR},
	{" pre pago", INTENT_SALES, 3, NULL},
	{" pos pago", INTENT_SALES, 3, NULL},
	{" valores", INTENT_SALES, 2, H_PRECO},
	{" interesse", INTENT_SALES, 2, H_PROMOCAO},
	{" migrar", INTENT_SALES, 3, H_UPGRADE},
	{" aumentar ", INTENT_SALES, 2, H_UPGRADE},
	{" cep", INTENT_SALES, 2, H_COBERTURA},
	{" disponibilidade", INTENT_SALES, 3, H_COBERTURA},
	{" mais uma linha", INTENT_SALES, 3, NULL},
	{" nova linha", INTENT_SALES, 3, NULL},
	{" linha nova", INTENT_SALES, 3, NULL},
	{" proposta", INTENT_SALES, 3, H_PRECO},
	{" link dedicado", INTENT_SALES, 4, H_PRECO},
	{" ip fixo", INTENT_SALES, 4, H_UPGRADE},
	{" esim", INTENT_SALES, 3, NULL},
	{" ponto extra", INTENT_SALES, 4, NULL},
	{" promo", INTENT_SALES, 1, H_PROMOCAO}, /* with " promocao": "promo", "promoção", "promocional" */
	{" black friday", INTENT_SALES, 3, H_PROMOCAO},
	{" recomend", INTENT_SALES, 3, H_VELOCIDADES},
	{" fechar ", INTENT_SALES, 3, H_PROMOCAO},
	{" alug", INTENT_SALES, 2, NULL},
	{" mesh", INTENT_SALES, 3, NULL},
	{" melhorar", INTENT_SALES, 2, H_UPGRADE},
	{" vendem", INTENT_SALES, 3, NULL},
	{" tem voces", INTENT_SALES, 3, H_COBERTURA},
	{" vir pra voces", INTENT_SALES, 4, H_PORTABILIDADE_ENTRADA},
	{" para ca", INTENT_SALES, 2, H_PORTABILIDADE_ENTRADA},
	{" pra ca", INTENT_SALES, 2, H_PORTABILIDADE_ENTRADA},
	{" inclu", INTENT_SALES, 3, H_PRECO},
	/* the customer's own plan named as context ("num plano de 500 só vem 20") */
	{" meu plano", INTENT_SALES, -2, NULL},
	{" num plano", INTENT_SALES, -2, NULL},
	{" meu pacote", INTENT_SALES, -2, NULL},
	/* the way the customer was (not) treated */
	{" ninguem", INTENT_COMPLAINT, 2, H_PROTOCOLO},
	{" ninguem respond", INTENT_COMPLAINT, 3, H_PROTOCOLO},
	{" ninguem atend", INTENT_COMPLAINT, 3, H_PROTOCOLO},
	{" ninguem aparec", INTENT_COMPLAINT, 3, H_TECNICO_FALTOU},
	{" nunca veio", INTENT_COMPLAINT, 4, H_TECNICO_FALTOU},
	{" nunca mais aparec", INTENT_COMPLAINT, 4, H_TECNICO_FALTOU},
	{" foi embora", INTENT_COMPLAINT, 3, H_TECNICO_FALTOU},
	{" sem arrumar", INTENT_COMPLAINT, 3, H_TECNICO_FALTOU},
	{" reagend", INTENT_COMPLAINT, 3, H_TECNICO_FALTOU},
	{" nenhuma resposta", INTENT_COMPLAINT, 4, H_PROTOCOLO},
	{" resposta", INTENT_COMPLAINT, 1, H_PROTOCOLO},
	{" vacuo", INTENT_COMPLAINT, 4, H_PROTOCOLO},
	{" ligou de volta", INTENT_COMPLAINT, 3, H_PROTOCOLO},
	{" disseram que", INTENT_COMPLAINT, 3, H_REINCIDENTE},
	{" mais uma vez", INTENT_COMPLAINT, 2, H_REINCIDENTE},
	{" fecharam", INTENT_COMPLAINT, 3, H_PROTOCOLO},
	{" encerraram", INTENT_COMPLAINT, 3, H_PROTOCOLO},
	{" insatisf", INTENT_COMPLAINT, 3, H_INSATISFEITO},
	{" maltrat", INTENT_COMPLAINT, 4, H_INSATISFEITO},
	{" mal tratad", INTENT_COMPLAINT, 4, H_INSATISFEITO},
	{" na minha cara", INTENT_COMPLAINT, 4, H_INSATISFEITO},
	{" respeit", INTENT_COMPLAINT, 3, H_INSATISFEITO},
	{" vergonh", INTENT_COMPLAINT, 3, H_INSATISFEITO},
	{" consumidor", INTENT_COMPLAINT, 2, H_RECLAMACAO_FORMAL},
	{" piada", INTENT_COMPLAINT, 3, H_INSATISFEITO},
	{" pior atendimento", INTENT_COMPLAINT, 4, H_INSATISFEITO},
	{" raiva", INTENT_COMPLAINT, 3, H_INSATISFEITO},
	{" bot ", INTENT_COMPLAINT, 3, H_INSATISFEITO},
	{" robo ", INTENT_COMPLAINT, 3, H_INSATISFEITO},
	{" nao sabe", INTENT_COMPLAINT, 2, H_INSATISFEITO},
	{" telemarketing", INTENT_COMPLAINT, 4, H_INSATISFEITO},
	{" parem de ligar", INTENT_COMPLAINT, 3, H_INSATISFEITO},
	{" por fora", INTENT_COMPLAINT, 3, H_INSATISFEITO},
	{" contra voces", INTENT_COMPLAINT, 2, H_RECLAMACAO_FORMAL},
	{" so agora", INTENT_COMPLAINT, 2, H_PROTOCOLO},
	{" so sabem", INTENT_COMPLAINT, 3, H_INSATISFEITO},
	{" nunca pagou", INTENT_COMPLAINT, 3, H_REINCIDENTE},
	{" respondid", INTENT_COMPLAINT, 3, H_PROTOCOLO},
	{" reclamacoes", INTENT_COMPLAINT, 4, H_RECLAMACAO_FORMAL},
	{" nao aguento mais", INTENT_COMPLAINT, 3, H_REINCIDENTE},
	{" impossivel", INTENT_COMPLAINT, 2, H_INSATISFEITO},
	{" musiquinha", INTENT_COMPLAINT, 3, H_PROTOCOLO},
	{" nao vier", INTENT_COMPLAINT, 2, H_TECNICO_FALTOU},
	{" esperando o tecnico", INTENT_COMPLAINT, 4, H_TECNICO_FALTOU},
	{" deu as caras", INTENT_COMPLAINT, 4, H_TECNICO_FALTOU},
	{" avisar", INTENT_COMPLAINT, 2, H_TECNICO_FALTOU},
	{" me trataram", INTENT_COMPLAINT, 3, H_INSATISFEITO},
	{" aguardando atendimento", INTENT_COMPLAINT, 4, H_PROTOCOLO},
	{" minutos", INTENT_COMPLAINT, 1, H_PROTOCOLO},
	{" ate hoje", INTENT_COMPLAINT, 2, H_REINCIDENTE},
	{" despreparad", INTENT_COMPLAINT, 4, H_INSATISFEITO},
	{" do que reclamar", INTENT_COMPLAINT, -4, NULL}, /* "não tenho do que reclamar" */
	{" ignor", INTENT_COMPLAINT, 3, H_PROTOCOLO},
	{" gravacao", INTENT_COMPLAINT, 3, H_INSATISFEITO},
	{" furaram", INTENT_COMPLAINT, 3, H_TECNICO_FALTOU},
	{" demor", INTENT_COMPLAINT, 2, H_PROTOCOLO},
	{" grosseir", INTENT_COMPLAINT, 4, H_INSATISFEITO},
	{" educacao", INTENT_COMPLAINT, 3, H_INSATISFEITO},
	{" atendido por", INTENT_COMPLAINT, 2, H_INSATISFEITO},
	{" me passam", INTENT_COMPLAINT, 3, H_REINCIDENTE},
	{" pro outro", INTENT_COMPLAINT, 2, H_REINCIDENTE},
	{" tentando resolver", INTENT_COMPLAINT, 3, H_REINCIDENTE},
	{" palhac", INTENT_COMPLAINT, 4, H_INSATISFEITO},
	{" sacanagem", INTENT_COMPLAINT, 3, H_INSATISFEITO},
	{" prazo", INTENT_COMPLAINT, 2, H_PROTOCOLO},
	{" promessa", INTENT_COMPLAINT, 3, H_REINCIDENTE},
	{" sem solucao", INTENT_COMPLAINT, 3, H_REINCIDENTE},
	/* ending part of a contract or a line */
	{" desativ", INTENT_CANCEL, 3, NULL},
	{" dar baixa na", INTENT_CANCEL, 3, NULL},
	{" renovar", INTENT_SALES, 2, H_PROMOCAO}, /* renewing is a sale; not renewing, an end */
	{" nao renov", INTENT_CANCEL, 4, NULL},
	{" nao vou renov", INTENT_CANCEL, 4, NULL},
	{" nao quero renov", INTENT_CANCEL, 4, NULL},
	{" finaliz", INTENT_CANCEL, 3, NULL},
	{" encerramento", INTENT_CANCEL, 4, NULL},
	{" falec", INTENT_CANCEL, 3, NULL},
	{" tirar", INTENT_CANCEL, 2, NULL},
	{" nao compensa", INTENT_CANCEL, 2, NULL},
	{" distrato", INTENT_CANCEL, 4, NULL},
	{" nao preciso mais", INTENT_CANCEL, 4, NULL},
	{" mais ser cliente", INTENT_CANCEL, 5, NULL},
	{" desligar a ", INTENT_CANCEL, 3, NULL},
	{" desligar o servico", INTENT_CANCEL, 4, NULL},
	{" como desliga", INTENT_CANCEL, 3, NULL},
	{" sai da", INTENT_CANCEL, 3, H_OPERADORA},
	{" sair de voces", INTENT_CANCEL, 4, H_OPERADORA},
	{" devolv", INTENT_CANCEL, 2, NULL},
	/* a cancellation told as the story of a bill, not asked for */
	{" nao cancelei", INTENT_CANCEL, -4, NULL},
	{" que eu cancelei", INTENT_CANCEL, -3, NULL},
	{" cancelei", INTENT_CANCEL, -3, NULL},
	{" foi cancelad", INTENT_CANCEL, -4, NULL}, /* "a visita foi cancelada": done to the customer */
	/* neither: asking for a person, opening hours, the registration, thanking */
	{" falar com atendente", INTENT_OTHER, 6, NULL},
	{" falar com um atendente", INTENT_OTHER, 6, NULL},
	{" atendente humano", INTENT_OTHER, 6, NULL},
	{" horario", INTENT_OTHER, 4, NULL},
	{" trabalham", INTENT_OTHER, 3, NULL},
	{" endereco da loja", INTENT_OTHER, 5, NULL},
	{" endereco de voces", INTENT_OTHER, 5, NULL},
	{" numero do sac", INTENT_OTHER, 5, NULL},
	{" telefone de voces", INTENT_OTHER, 5, NULL},
	{" senha do wifi", INTENT_OTHER, 6, NULL},
	{" senha", INTENT_OTHER, 1, NULL},
	{" cadastro", INTENT_OTHER, 3, NULL},
	{" meu email", INTENT_OTHER, 2, NULL},
	{" endereco de email", INTENT_OTHER, 3, NULL},
	{" titular", INTENT_OTHER, 4, NULL},
	{" gerente", INTENT_OTHER, 3, NULL},
	{" o app", INTENT_OTHER, 1, NULL},
	{" mudar a internet de endereco", INTENT_OTHER, 6, NULL},
	{" mudanca de endereco", INTENT_OTHER, 6, NULL},
	{" obrigad", INTENT_OTHER, 2, NULL},
	{" valeu", INTENT_OTHER, 2, NULL},
	{" resolveu", INTENT_OTHER, 3, NULL},
	{" voltou", INTENT_OTHER, 3, NULL},
	{" aguardo", INTENT_OTHER, 3, NULL},
	{" aguardando o retorno", INTENT_OTHER, 3, NULL},
	{" estou aguardando", INTENT_OTHER, 2, NULL},
	{" humano", INTENT_OTHER, 5, NULL},
	{" curriculo", INTENT_OTHER, 5, NULL},
	{" vou esperar", INTENT_OTHER, 4, NULL},
	{" comprovante de endereco", INTENT_OTHER, 5, NULL},
	{" endereco de cobranca", INTENT_OTHER, 6, NULL},
	{" atendem por", INTENT_OTHER, 5, NULL},
	{" desculpa a demora", INTENT_OTHER, 5, NULL},
	{" vou aguardar", INTENT_OTHER, 4, NULL},
	{" que horas", INTENT_OTHER, 4, NULL},
	{" feriado", INTENT_OTHER, 3, NULL},
	{" sabado", INTENT_OTHER, 2, NULL},
	{" domingo", INTENT_OTHER, 2, NULL},
	{" dados cadastrais", INTENT_OTHER, 5, NULL},
	{" atualizar", INTENT_OTHER, 3, NULL},
	{" codigo de cliente", INTENT_OTHER, 4, NULL},
	{" agradec", INTENT_OTHER, 3, NULL},
	{" informac", INTENT_OTHER, 2, NULL},
	{" telefone de contato", INTENT_OTHER, 5, NULL},
	{" copia do contrato", INTENT_OTHER, 5, NULL},
	{" contrato por email", INTENT_OTHER, 4, NULL},
	{" vaga de emprego", INTENT_OTHER, 5, NULL},
	{" pessoa de verdade", INTENT_OTHER, 5, NULL},
	{" encerrar o atendimento", INTENT_OTHER, 7, NULL},
	{" tudo certo", INTENT_OTHER, 3, NULL},
	{" deu certo", INTENT_OTHER, 4, NULL},
	{" consegui resolver", INTENT_OTHER, 5, NULL},
	{" nome da minha rede", INTENT_OTHER, 6, NULL},
	{" nome da rede", INTENT_OTHER, 6, NULL},
	{" endereco novo", INTENT_OTHER, 4, NULL},
	{" levar a internet", INTENT_OTHER, 5, NULL},
	{" transferir a internet", INTENT_OTHER, 5, NULL},
	{" mudar de casa", INTENT_OTHER, 3, NULL},
	/* treatment failures told in other words: a call-back or promise not kept, being sent
	 * around, a chat or call that ended alone, a formal complaint by another name */
	{" cumpr", INTENT_COMPLAINT, 3, H_REINCIDENTE},
	{" ficou de", INTENT_COMPLAINT, 3, H_PROTOCOLO},
	{" ficaram de", INTENT_COMPLAINT, 3, H_PROTOCOLO},
	{" ia me", INTENT_COMPLAINT, 3, H_PROTOCOLO},
	{" iam me", INTENT_COMPLAINT, 3, H_PROTOCOLO},
	{" era pra vir", INTENT_COMPLAINT, 4, H_TECNICO_FALTOU},
	{" era para vir", INTENT_COMPLAINT, 4, H_TECNICO_FALTOU},
	{" transferid", INTENT_COMPLAINT, 3, H_REINCIDENTE}, /* being sent around; "transferir o serviço" is a move */
	{" transferem", INTENT_COMPLAINT, 3, H_REINCIDENTE},
	{" transferindo", INTENT_COMPLAINT, 3, H_REINCIDENTE},
	{" me transfer", INTENT_COMPLAINT, 3, H_REINCIDENTE},
	{" me mandaram", INTENT_COMPLAINT, 3, H_REINCIDENTE},
	{" me mandam", INTENT_COMPLAINT, 3, H_REINCIDENTE},
	{" jogam de", INTENT_COMPLAINT, 3, H_REINCIDENTE},
	{" espera", INTENT_COMPLAINT, 2, H_PROTOCOLO},
	{" encerrou", INTENT_COMPLAINT, 3, H_PROTOCOLO},
	{" desligaram", INTENT_COMPLAINT, 3, H_INSATISFEITO},
	{" queixa", INTENT_COMPLAINT, 4, H_RECLAMACAO_FORMAL},
	{" formal", INTENT_COMPLAINT, 2, H_RECLAMACAO_FORMAL},
	{" lamentavel", INTENT_COMPLAINT, 3, H_INSATISFEITO},
	{" garantiu", INTENT_COMPLAINT, 2, H_REINCIDENTE},
	{" garantiram", INTENT_COMPLAINT, 2, H_REINCIDENTE},
	{" enganou", INTENT_COMPLAINT, 4, H_INSATISFEITO},
	{" nada ate agora", INTENT_COMPLAINT, 3, H_PROTOCOLO},
	/* a bill that grew, a charge that keeps coming, money owed */
	{" aumento", INTENT_BILLING, 3, H_VALOR_ERRADO},
	{" vindo o valor", INTENT_BILLING, 4, H_VALOR_ERRADO},
	{" vindo a fatura", INTENT_BILLING, 4, H_VALOR_ERRADO},
	{" vindo cobr", INTENT_BILLING, 4, H_VALOR_ERRADO},
	{" vindo uma cobr", INTENT_BILLING, 4, H_VALOR_ERRADO},
	{" valor inteiro", INTENT_BILLING, 3, H_VALOR_ERRADO},
	{" valor cheio", INTENT_BILLING, 3, H_VALOR_ERRADO},
	{" veio cheia", INTENT_BILLING, 3, H_VALOR_ERRADO},
	{" aluguel", INTENT_BILLING, 3, H_VALOR_ERRADO},
	{" comodato", INTENT_BILLING, 2, H_VALOR_ERRADO},
	{" pagando", INTENT_BILLING, 3, NULL},
	{" devo ", INTENT_BILLING, 3, H_PARCELAR},
	{" consigo pagar", INTENT_BILLING, 4, H_PIX},
	{" conseguindo pagar", INTENT_BILLING, 4, H_PIX},
	{" separad", INTENT_BILLING, 2, NULL},
	{" ja da conta", INTENT_BILLING, -2, NULL}, /* "já dá conta": enough, not a bill */
	{" nao da conta", INTENT_BILLING, -2, NULL},
	{" fiquei sem", INTENT_OUTAGE, -3, NULL}, /* a past outage told to ask for a refund */
	{" ficamos sem", INTENT_OUTAGE, -3, NULL},
	/* availability and price questions */
	{" tem plano", INTENT_SALES, 3, H_PRECO},
	{" taxa de instalacao", INTENT_SALES, 5, H_COBERTURA},
	{" taxa de instalacao", INTENT_BILLING, -3, NULL},
	{" roteador novo", INTENT_SALES, 3, H_UPGRADE},
	{" aparelho novo", INTENT_SALES, 3, NULL},
	{" equipamento novo", INTENT_SALES, 3, NULL},
	{" tem internet via", INTENT_SALES, 3, H_COBERTURA},
	{" tem internet por", INTENT_SALES, 3, H_COBERTURA},
	{" tem internet pra", INTENT_SALES, 3, H_COBERTURA},
	{" vale a pena", INTENT_SALES, 3, H_VELOCIDADES},
	/* ending part of a contract */
	{" encerra ", INTENT_CANCEL, 4, NULL},
	{" tira o", INTENT_CANCEL, 3, NULL},
	{" tira a", INTENT_CANCEL, 3, NULL},
	{" remov", INTENT_CANCEL, 2, NULL},
	{" tira uma duvida", INTENT_CANCEL, -3, NULL},
	/* own probes in the sets' style (2026-12-05), not from a set */
	{" terceiros", INTENT_BILLING, 3, H_VALOR_ERRADO},
	{" dobrou", INTENT_BILLING, 3, H_VALOR_ERRADO},
	{" por menos", INTENT_SALES, 3, H_PROMOCAO},
	{" quanto e o", INTENT_SALES, 3, H_PRECO},
	{" por internet", INTENT_SALES, 3, H_COBERTURA},
	{" botar internet", INTENT_SALES, 4, H_COBERTURA},
	{" via do contrato", INTENT_BILLING, -5, NULL},
	{" via do contrato", INTENT_OTHER, 5, NULL},
	{" acessar minha conta", INTENT_OTHER, 4, NULL},
	{" area do cliente", INTENT_OTHER, 4, NULL},
	{" controle", INTENT_OUTAGE, 1, NULL},
	{" parou ", INTENT_OUTAGE, 2, H_QUEDA},
	{" devagar", INTENT_OUTAGE, 4, H_LENTIDAO},
	{" senha do", INTENT_OTHER, 5, NULL},
	{" a senha", INTENT_OTHER, 2, NULL},
	{" atendem domingo", INTENT_OTHER, 4, NULL},
	{" atendem sabado", INTENT_OTHER, 4, NULL},
	{" atendem feriado", INTENT_OTHER, 4, NULL},
	{" abrem", INTENT_OTHER, 3, NULL},
	{" expliquei", INTENT_COMPLAINT, 3, H_REINCIDENTE},
	/* a vocabulary audit: one short message per common way of saying each intent */
	{" travad", INTENT_OUTAGE, 4, H_LENTIDAO},
	{" sem rede", INTENT_OUTAGE, 4, H_SEM_SINAL},
	{" pra carregar", INTENT_OUTAGE, 3, H_LENTIDAO},
	{" nada funciona", INTENT_OUTAGE, 4, H_QUEDA},
	{" sem cobertura", INTENT_OUTAGE, 3, H_SEM_SINAL},
	{" liga de volta", INTENT_COMPLAINT, 3, H_PROTOCOLO},
	{" ligam de volta", INTENT_COMPLAINT, 3, H_PROTOCOLO},
	{" ligar de volta", INTENT_COMPLAINT, 3, H_PROTOCOLO},
	{" ligaram de volta", INTENT_COMPLAINT, 3, H_PROTOCOLO},
	{" fechad", INTENT_COMPLAINT, 2, H_PROTOCOLO},
	{" sem resolver", INTENT_COMPLAINT, 3, H_REINCIDENTE},
	{" onde fica", INTENT_OTHER, 4, NULL},
	{" off ", INTENT_OUTAGE, 3, H_QUEDA},
	{" morreu", INTENT_OUTAGE, 3, H_QUEDA},
	{" vai e volta", INTENT_OUTAGE, 4, H_INSTAVEL},
	{" bugad", INTENT_OUTAGE, 3, H_QUEDA},
	{" esta muda", INTENT_OUTAGE, 4, NULL},
	{" esta mudo", INTENT_OUTAGE, 4, NULL},
	{" consigo ligar", INTENT_OUTAGE, 3, NULL},
	{" mais velocidade", INTENT_SALES, 4, H_UPGRADE},
	{" ser cliente", INTENT_SALES, 4, H_PROMOCAO},
	{" sem aviso", INTENT_COMPLAINT, 3, H_TECNICO_FALTOU},
	{" sem avisar", INTENT_COMPLAINT, 3, H_TECNICO_FALTOU},
	{" vou sair", INTENT_CANCEL, 4, H_OPERADORA},
	{" comprovante de residencia", INTENT_OTHER, 5, NULL},
	{" presencial", INTENT_OTHER, 4, NULL},
	{" me ligando", INTENT_COMPLAINT, 3, H_INSATISFEITO},
	{" pra avisar que", INTENT_OTHER, 3, NULL},
	{" qual o email de voces", INTENT_OTHER, 4, NULL},
	/* the number leaving for another operator */
	{" pra tim", INTENT_CANCEL, 3, H_OPERADORA},
	{" pra vivo", INTENT_CANCEL, 3, H_OPERADORA},
	{" pra claro", INTENT_CANCEL, 3, H_OPERADORA},
	{" pra oi ", INTENT_CANCEL, 3, H_OPERADORA},
	{" pra sky", INTENT_CANCEL, 3, H_OPERADORA},
	{" para a tim", INTENT_CANCEL, 3, H_OPERADORA},
	{" para a vivo", INTENT_CANCEL, 3, H_OPERADORA},
	{" para a claro", INTENT_CANCEL, 3, H_OPERADORA},
	{" para a oi ", INTENT_CANCEL, 3, H_OPERADORA},
	{" para a sky", INTENT_CANCEL, 3, H_OPERADORA},
	/* neither */
	{" de lugar", INTENT_OTHER, 4, NULL},
	{" numero do protocolo", INTENT_OTHER, 3, NULL},
	{" numero do meu protocolo", INTENT_OTHER, 3, NULL},
	{" arrum", INTENT_OUTAGE, 2, H_QUEDA},
	/* families of words (2026-12-05): each intent said the ways customers of other businesses
	 * say it too — energy and water, health plans, bank cards, online stores, gyms */
	{" conta de luz", INTENT_BILLING, 4, H_VALOR_ERRADO},
	{" conta da luz", INTENT_BILLING, 4, H_VALOR_ERRADO},
	{" conta de energia", INTENT_BILLING, 4, H_VALOR_ERRADO},
	{" conta de agua", INTENT_BILLING, 4, H_VALOR_ERRADO},
	{" conta da agua", INTENT_BILLING, 4, H_VALOR_ERRADO},
	{" conta de gas", INTENT_BILLING, 4, H_VALOR_ERRADO},
	{" conta do gas", INTENT_BILLING, 4, H_VALOR_ERRADO},
	{" leitura", INTENT_BILLING, 3, H_VALOR_ERRADO},
	{" medidor", INTENT_BILLING, 2, H_VALOR_ERRADO},
	{" consumo", INTENT_BILLING, 2, H_VALOR_ERRADO},
	{" dobro", INTENT_BILLING, 3, H_VALOR_ERRADO},
	{" anuidade", INTENT_BILLING, 3, H_VALOR_ERRADO},
	{" sem anuidade", INTENT_BILLING, -3, NULL}, /* a card without a fee: a product asked for */
	{" sem anuidade", INTENT_SALES, 4, H_PRECO},
	{" coparticipac", INTENT_BILLING, 4, H_VALOR_ERRADO},
	{" cashback", INTENT_BILLING, 4, H_ESTORNO},
	{" frete", INTENT_BILLING, 2, H_VALOR_ERRADO},
	{" veio maior", INTENT_BILLING, 4, H_VALOR_ERRADO},
	{" valor maior", INTENT_BILLING, 3, H_VALOR_ERRADO},
	{" esgotad", INTENT_SALES, 4, NULL},
	{" estoque", INTENT_SALES, 3, NULL},
	{" tamanho", INTENT_SALES, 2, NULL},
	{" vender", INTENT_SALES, 3, H_PRECO},
	{" vende ", INTENT_SALES, 3, H_PRECO},
	{" quero comprar", INTENT_SALES, 4, H_PRECO},
	{" matricula", INTENT_SALES, 3, H_PRECO},
	{" dependente", INTENT_SALES, 3, H_PRECO},
	{" limite", INTENT_SALES, 2, H_UPGRADE},
	{" adicional", INTENT_SALES, 2, H_UPGRADE},
	{" sai quanto", INTENT_SALES, 4, H_PRECO},
	{" sai por quanto", INTENT_SALES, 4, H_PRECO},
	{" pro de ", INTENT_SALES, 2, H_UPGRADE}, /* "passar pro de 500": a bigger plan */
	{" empresaria", INTENT_SALES, 3, H_PRECO},
	{" informacoes sobre", INTENT_OTHER, -2, NULL}, /* "informações sobre X": X is the subject */
	{" sem luz", INTENT_OUTAGE, 5, H_QUEDA},
	{" sem energia", INTENT_OUTAGE, 5, H_QUEDA},
	{" sem agua", INTENT_OUTAGE, 5, H_QUEDA},
	{" falta de agua", INTENT_OUTAGE, 4, H_QUEDA},
	{" falta de energia", INTENT_OUTAGE, 4, H_QUEDA},
	{" faltando", INTENT_OUTAGE, 3, H_QUEDA},
	{" queda de energia", INTENT_OUTAGE, 4, H_QUEDA},
	{" sem funcionar", INTENT_OUTAGE, 5, H_QUEDA},
	{" sem chip", INTENT_OUTAGE, 4, H_SEM_SINAL},
	{" some ", INTENT_OUTAGE, 3, H_INSTAVEL},
	{" sumindo", INTENT_OUTAGE, 3, H_INSTAVEL},
	{" derrub", INTENT_OUTAGE, 3, H_QUEDA},
	{" recusad", INTENT_OUTAGE, 3, NULL},
	{" da erro", INTENT_OUTAGE, 2, H_QUEDA},
	{" erro de login", INTENT_OUTAGE, 3, NULL},
	{" erro no login", INTENT_OUTAGE, 3, NULL},
	{" nao esta lendo", INTENT_OUTAGE, 3, NULL},
	{" nao cheg", INTENT_SALES, -3, NULL}, /* "o sms não chega": no coverage question */
	{" nao cheg", INTENT_OUTAGE, 1, NULL},
	{" mensagem automatica", INTENT_COMPLAINT, 4, H_INSATISFEITO},
	{" resposta automatica", INTENT_COMPLAINT, 4, H_INSATISFEITO},
	{" respostas automaticas", INTENT_COMPLAINT, 4, H_INSATISFEITO},
	{" pedi pra parar", INTENT_COMPLAINT, 4, H_INSATISFEITO},
	{" ficam me ligando", INTENT_COMPLAINT, 4, H_INSATISFEITO},
	{" ficam me mandando", INTENT_COMPLAINT, 4, H_INSATISFEITO},
	{" parar de ligar", INTENT_COMPLAINT, 4, H_INSATISFEITO},
	{" parar de me ligar", INTENT_COMPLAINT, 4, H_INSATISFEITO},
	{" fila", INTENT_COMPLAINT, 2, H_PROTOCOLO},
	{" horas esperando", INTENT_COMPLAINT, 4, H_PROTOCOLO},
	{" cancelaram", INTENT_COMPLAINT, 3, H_TECNICO_FALTOU}, /* the company ended it: how the customer was treated */
	{" cancelaram", INTENT_CANCEL, -5, NULL},
	{" encerrar a conversa", INTENT_CANCEL, -5, NULL},
	{" encerrar a conversa", INTENT_COMPLAINT, 3, H_INSATISFEITO},
	{" encerrar o chat", INTENT_CANCEL, -5, NULL},
	{" encerrar o chat", INTENT_COMPLAINT, 3, H_INSATISFEITO},
	{" desinstal", INTENT_CANCEL, 4, NULL},
	{" desliga a ", INTENT_CANCEL, 4, NULL},
	{" desliga o ", INTENT_CANCEL, 4, NULL},
	{" desliga minha", INTENT_CANCEL, 4, NULL},
	{" desliga meu", INTENT_CANCEL, 4, NULL},
	{" desligue", INTENT_CANCEL, 4, NULL},
	{" desliguem", INTENT_CANCEL, 4, NULL},
	{" desligar minha", INTENT_CANCEL, 4, NULL},
	{" desligar meu", INTENT_CANCEL, 4, NULL},
	{" encerrem", INTENT_CANCEL, 4, NULL},
	{" encerre ", INTENT_CANCEL, 4, NULL},
	{" suspender definitiv", INTENT_CANCEL, 4, NULL},
	{" pra sair", INTENT_CANCEL, 3, H_MULTA},
	{" para sair", INTENT_CANCEL, 3, H_MULTA},
	{" quero sair", INTENT_CANCEL, 4, NULL},
	{" quebrar o contrato", INTENT_CANCEL, 4, H_MULTA},
	{" romper o contrato", INTENT_CANCEL, 4, H_MULTA},
	{" desfazer", INTENT_CANCEL, 4, NULL},
	{" arrependimento", INTENT_CANCEL, 4, NULL},
	{" nao uso mais", INTENT_CANCEL, 3, NULL},
	{" nao usamos mais", INTENT_CANCEL, 3, NULL},
	{" nao vou usar mais", INTENT_CANCEL, 3, NULL},
	{" pro atendente", INTENT_OTHER, 5, NULL},
	{" para o atendente", INTENT_OTHER, 5, NULL},
	{" pra um atendente", INTENT_OTHER, 5, NULL},
	{" para um atendente", INTENT_OTHER, 5, NULL},
	{" atendimento humano", INTENT_OTHER, 6, NULL},
	{" falar com uma pessoa", INTENT_OTHER, 5, NULL},
	{" falar com robo", INTENT_OTHER, 5, NULL},
	{" alterar meu", INTENT_OTHER, 3, NULL},
	{" atualizar meu", INTENT_OTHER, 3, NULL},
	{" atualizo", INTENT_OTHER, 3, NULL},
	{" meu telefone", INTENT_OTHER, 3, NULL},
	{" como contato", INTENT_OTHER, 4, NULL},
	{" cadastrad", INTENT_OTHER, 3, NULL},
	{" responsavel pela conta", INTENT_OTHER, 5, NULL},
	{" passar o contrato", INTENT_OTHER, 5, NULL},
	{" pro meu nome", INTENT_OTHER, 4, NULL},
	{" para o meu nome", INTENT_OTHER, 4, NULL},
	{" para meu nome", INTENT_OTHER, 4, NULL},
	{" mudei de endereco", INTENT_OTHER, 5, NULL},
	{" mudei de cidade", INTENT_OTHER, 5, NULL},
	{" mudei de casa", INTENT_OTHER, 5, NULL},
	{" mudar de cidade", INTENT_OTHER, 5, NULL},
	{" mudar de endereco", INTENT_OTHER, 5, NULL},
	{" de mudanca", INTENT_OTHER, 4, NULL},
	{" transferir o servico", INTENT_OTHER, 5, NULL},
	{" transferir a linha", INTENT_OTHER, 5, NULL},
	{" levar minha internet", INTENT_OTHER, 5, NULL},
	{" levar a linha", INTENT_OTHER, 5, NULL},
	{" numero de protocolo", INTENT_OTHER, 3, NULL},
	{" protocolo desse atendimento", INTENT_OTHER, 3, NULL},
	{" protocolo deste atendimento", INTENT_OTHER, 3, NULL},
	{" controle dos pais", INTENT_OTHER, 5, NULL},
	{" controle parental", INTENT_OTHER, 5, NULL},
	{" configur", INTENT_OTHER, 3, NULL},
	{" libras", INTENT_OTHER, 5, NULL},
	{" acessibilidade", INTENT_OTHER, 4, NULL},
	{" minha solicitacao", INTENT_COMPLAINT, 3, H_PROTOCOLO},
	{" carteirinha", INTENT_OTHER, 3, NULL},
	{" loja fisica", INTENT_OTHER, 4, NULL},
	{" aplicativo", INTENT_OTHER, 2, NULL},
	{" numero da central", INTENT_OTHER, 5, NULL},
	{" telefone da central", INTENT_OTHER, 5, NULL},
	{" vindo errad", INTENT_BILLING, 4, H_VALOR_ERRADO},
	{" nao veio o desconto", INTENT_BILLING, 5, H_VALOR_ERRADO},
	{" desconto nao veio", INTENT_BILLING, 5, H_VALOR_ERRADO},
	{" nao veio com o desconto", INTENT_BILLING, 5, H_VALOR_ERRADO},
	{" desconto nao foi", INTENT_BILLING, 5, H_VALOR_ERRADO},
	{" nao aplicaram o desconto", INTENT_BILLING, 5, H_VALOR_ERRADO},
	{" trabalham com", INTENT_OTHER, -3, NULL}, /* "vocês trabalham com X?": a product, not opening hours */
	{" trabalham com", INTENT_SALES, 3, H_PRECO},
	{" quanto sai", INTENT_SALES, 3, H_PRECO},
	{" barrent", INTENT_OUTAGE, 4, NULL},
	{" agua suja", INTENT_OUTAGE, 4, NULL},
	{" sem pressao", INTENT_OUTAGE, 4, NULL},
	{" vazamento", INTENT_OUTAGE, 3, NULL},
	{" fica rodando", INTENT_OUTAGE, 3, H_LENTIDAO},
	{" nao conclui", INTENT_OUTAGE, 3, H_QUEDA},
	{" nao finaliza", INTENT_OUTAGE, 3, H_QUEDA},
	{" nao completa", INTENT_OUTAGE, 3, H_QUEDA},
	{" fecha sozinho", INTENT_OUTAGE, 4, H_QUEDA},
	{" fechando sozinho", INTENT_OUTAGE, 4, H_QUEDA},
	{" instalaram", INTENT_SALES, -2, NULL}, /* what was installed is a story, not a sale */
	{" chegou atrasad", INTENT_COMPLAINT, 4, H_TECNICO_FALTOU},
	{" chegaram atrasad", INTENT_COMPLAINT, 4, H_TECNICO_FALTOU},
	{" horas atrasad", INTENT_COMPLAINT, 4, H_TECNICO_FALTOU},
	{" decepcion", INTENT_COMPLAINT, 4, H_INSATISFEITO},
	{" tratamento que recebi", INTENT_COMPLAINT, 4, H_INSATISFEITO},
	{" arrogant", INTENT_COMPLAINT, 4, H_INSATISFEITO},
	{" estupid", INTENT_COMPLAINT, 4, H_INSATISFEITO},
	{" ignorante", INTENT_COMPLAINT, 4, H_INSATISFEITO},
	{" sem educacao", INTENT_COMPLAINT, 4, H_INSATISFEITO},
	{" debochad", INTENT_COMPLAINT, 4, H_INSATISFEITO},
	{" ironic", INTENT_COMPLAINT, 3, H_INSATISFEITO},
	{" rispid", INTENT_COMPLAINT, 4, H_INSATISFEITO},
	{" impacien", INTENT_COMPLAINT, 3, H_INSATISFEITO},
	{" mal humorad", INTENT_COMPLAINT, 4, H_INSATISFEITO},
	{" pessoas diferentes", INTENT_COMPLAINT, 3, H_REINCIDENTE},
	{" cada um ", INTENT_COMPLAINT, 2, H_REINCIDENTE},
	{" cada uma ", INTENT_COMPLAINT, 2, H_REINCIDENTE},
	{" trancar", INTENT_CANCEL, 3, NULL},
	{" definitivamente", INTENT_CANCEL, 2, NULL},
	{" cnpj de voces", INTENT_OTHER, 5, NULL},
	{" razao social", INTENT_OTHER, 4, NULL},
	{" mudar o nome", INTENT_OTHER, 4, NULL},
	{" trocar o nome", INTENT_OTHER, 4, NULL},
	{" nome da conta", INTENT_OTHER, 3, NULL},
	/* probes round 9 (2026-12-05), tuned after its before-measurement */
	{" reajust", INTENT_BILLING, 3, H_VALOR_ERRADO}, /* reajustou, reajustaram, reajustado */
	{" sem juros", INTENT_SALES, 3, H_PRECO}, /* a sale's terms as often as a bill's */
	{" sem juros", INTENT_BILLING, -2, NULL},
	{" abrir conta", INTENT_SALES, 6, H_PROMOCAO},
	{" abrir uma conta", INTENT_SALES, 6, H_PROMOCAO},
	{" finalizar a compra", INTENT_CANCEL, -3, NULL},
	{" finalizar o pedido", INTENT_CANCEL, -3, NULL},
	{" finalizar o pagamento", INTENT_CANCEL, -3, NULL},
	{" esta fora", INTENT_OUTAGE, 3, H_QUEDA},
	{" nao da pra usar", INTENT_OUTAGE, 3, H_LENTIDAO},
	{" nao da pra assistir", INTENT_OUTAGE, 3, H_LENTIDAO},
	{" nao da pra ver", INTENT_OUTAGE, 3, H_LENTIDAO},
	{" nao da pra jogar", INTENT_OUTAGE, 3, H_LENTIDAO},
	{" nao da pra trabalhar", INTENT_OUTAGE, 3, H_LENTIDAO},
	{" nao da pra nem", INTENT_OUTAGE, 3, H_LENTIDAO},
	{" nao da nem pra", INTENT_OUTAGE, 3, H_LENTIDAO},
	{" sujeira", INTENT_COMPLAINT, 3, H_INSATISFEITO},
	{" bagunca", INTENT_COMPLAINT, 3, H_INSATISFEITO},
	{" atencios", INTENT_OTHER, 3, NULL},
	{" um amor", INTENT_OTHER, 3, NULL},
	{" foi otim", INTENT_OTHER, 3, NULL},
	{" excelente", INTENT_OTHER, 2, NULL},
	{" certidao", INTENT_OTHER, 3, NULL},
	{" atestado", INTENT_OTHER, 3, NULL},
	/* probes round 10 (2026-12-05), tuned after its before-measurement */
	{" nao apareceu no", INTENT_COMPLAINT, -3, NULL}, /* a bill not in the app: no no-show */
	{" quando fecha", INTENT_BILLING, 3, H_SEGUNDA_VIA},
	{" disponivel", INTENT_SALES, 2, H_PRECO},
	{" indisponivel", INTENT_SALES, 2, H_PRECO},
	{" seguro", INTENT_SALES, 2, H_PRECO},
	{" taxa menor", INTENT_SALES, 4, H_PRECO},
	{" logar", INTENT_OUTAGE, 3, H_QUEDA},
	{" senha invalida", INTENT_OUTAGE, 3, H_QUEDA},
	{" nao deixa", INTENT_OUTAGE, 2, H_QUEDA},
	{" ninguem aqui", INTENT_COMPLAINT, -2, NULL}, /* "ninguém aqui na rua tem água": the area is out */
	{" ninguem aqui", INTENT_OUTAGE, 2, H_QUEDA},
	{" a cancela ", INTENT_CANCEL, -5, NULL}, /* after an article "cancela" is a gate */
	{" da cancela ", INTENT_CANCEL, -5, NULL},
	{" na cancela ", INTENT_CANCEL, -5, NULL},
	{" nao le ", INTENT_OUTAGE, 3, NULL},
	{" nao respond", INTENT_COMPLAINT, 3, H_PROTOCOLO},
	{" nao atend", INTENT_COMPLAINT, 3, H_PROTOCOLO},
	{" insistente", INTENT_COMPLAINT, 4, H_INSATISFEITO},
	{" empurr", INTENT_COMPLAINT, 3, H_REINCIDENTE},
	{" que eu nao queria", INTENT_SALES, -3, NULL},
	{" que eu nao pedi", INTENT_SALES, -3, NULL},
	{" quebrar a fidelidade", INTENT_CANCEL, 5, H_MULTA},
	{" sair da fidelidade", INTENT_CANCEL, 5, H_MULTA},
	{" desligar todas", INTENT_CANCEL, 4, NULL},
	{" cancelar todas", INTENT_CANCEL, 4, NULL},
	{" encerrando", INTENT_CANCEL, 2, NULL},
	{" como encerro", INTENT_CANCEL, 4, NULL},
	{" trocar de banco", INTENT_CANCEL, 4, H_OPERADORA},
	{" me desligando", INTENT_CANCEL, 4, NULL},
	{" me desligar", INTENT_CANCEL, 4, NULL},
	{" fechar o chamado", INTENT_OTHER, 5, NULL},
	{" fechar o protocolo", INTENT_OTHER, 5, NULL},
	{" encerrar o chamado", INTENT_OTHER, 5, NULL},
	{" ja resolveram", INTENT_OTHER, 4, NULL},
};

/* WhatsApp spelling, one normalized word -> what an agent reads (may be several words). */
static const struct {
	const char *from, *to;
} rules_slang[] = {
	{"vc", "voce"},       {"vcs", "voces"},      {"pq", "porque"},      {"q", "que"},
	{"oq", "o que"},      {"td", "tudo"},        {"tds", "todos"},      {"hj", "hoje"},
	{"msm", "mesmo"},     {"net", "internet"},   {"zap", "whatsapp"},   {"wpp", "whatsapp"},
	{"whats", "whatsapp"}, {"n", "nao"},         {"nn", "nao"},         {"naum", "nao"},
	{"ta", "esta"},       {"tah", "esta"},       {"to", "estou"},       {"tou", "estou"},
	{"tava", "estava"},   {"tb", "tambem"},      {"tbm", "tambem"},     {"mt", "muito"},
	{"mto", "muito"},     {"mtu", "muito"},      {"qdo", "quando"},     {"qnd", "quando"},
	{"qndo", "quando"},   {"hr", "hora"},        {"hrs", "horas"},      {"qro", "quero"},
	{"qr", "quero"},      {"qria", "queria"},    {"qeria", "queria"},   {"pfv", "por favor"},
	{"pf", "por favor"},  {"pfvr", "por favor"}, {"obg", "obrigado"},   {"obgd", "obrigado"},
	{"obgda", "obrigada"}, {"brigado", "obrigado"}, {"brigada", "obrigada"}, {"brigadao", "obrigado"},
	{"vlw", "valeu"},     {"blz", "beleza"},     {"bol", "boleto"},     {"2via", "segunda via"},
	{"ngm", "ninguem"},   {"nd", "nada"},        {"agr", "agora"},      {"dps", "depois"},
	{"kd", "cade"},       {"vo", "vou"},         {"eh", "e"},           {"p", "pra"},
	{"ctz", "certeza"},   {"cmg", "comigo"},     {"fds", "fim de semana"},
	{"qnto", "quanto"},   {"qto", "quanto"},     {"qnt", "quanto"},     {"cel", "celular"},
	{"d", "de"},          {"add", "adicionar"},  {"addd", "adicionar"},
};

/* Words a typo is corrected to (one edit from 6 letters on, two from 10); the ones the
 * keywords above need whole. Kept short: every entry is a word a customer mistypes. */
static const char *const rules_vocabulary[] = {
	"cancelar",    "cancelamento", "cancelado",   "internet",   "fatura",       "boleto",      "segunda",
	"roteador",    "reclamacao",   "reclamar",    "pagamento",  "velocidade",   "instalacao",  "instalar",
	"tecnico",     "conexao",      "funcionando", "funciona",   "contratar",    "promocao",    "cobranca",
	"vencimento",  "desconto",     "atendimento", "atendente",  "protocolo",    "pessimo",     "pessima",
	"caindo",      "oscilando",    "instavel",    "planos",     "upgrade",      "cobertura",   "ouvidoria",
	"absurdo",     "horrivel",     "fidelidade",  "portabilidade", "operadora", "contrato",    "encerrar",
	"desistir",    "parcelar",     "estorno",     "reembolso",  "comprovante",  "duplicidade", "debito",
	"automatico",  "mensalidade",  "obrigado",    "obrigada",   "ninguem",      "resolve",     "resolver",
	"manutencao",  "desconecta",   "travando",    "contratacao", "gostaria",    "preciso",     "lentidao",
	"conectar",    "conecta",      "vergonha",    "descaso",    "respeito",     "insatisfeito", "insatisfeita",
	"pagar",       "paguei",       "cobrado",     "cobraram",   "cobrando",     "vencida",     "vencido",
	"urgente",     "urgencia",     "emergencia",  "advogado",   "justica",      "processar",   "fraude",
	"resolveu",    "segundo",      "contratei",
};

/* Words that make the keyword right after them the customer's request. */
static const char *const rules_request_words[] = {
	" quero ", " queria ", " gostaria ", " preciso ", " precisava ", " pode ", " podem ", " manda ",
	" mande ", " envia ", " envie ", " me passa ", " como faco ", " como faz ", " solicitar ", " qual ",
	" quanto ", " quais ", " tem como ", " vim ", " desejo ", " prefiro ", " decidi ",
};
/* A judgement ("ruim", "uma porcaria") says a fault when it follows a service, a complaint
 * when it follows the people who served: the word alone weighs towards complaint. Words that
 * are faults whatever they follow ("lenta", "instável") are keywords, not judgements, so a
 * slow line is not counted twice against the request that closes the message. */
static const char *const rules_verdict_words[] = {
	" ruim", " pessim", " horrivel", " lixo", " merda", " bosta", " droga", " porcaria", " lesma",
	" desgraca", " osso", " podre", " uma piada", " negacao", " mal ", " nao presta",
};
static const char *const rules_self_words[] = {" sou ", " eu sou ", " estou ", " fico ", " me sinto "};
static const char *const rules_service_words[] = {
	" internet ", " wifi ", " wi fi ", " sinal ", " conexao ", " rede ", " tv ", " linha ", " telefone ",
	" celular ", " velocidade ", " servico ", " fibra ", " roteador ", " chip ",
};
static const char *const rules_treatment_words[] = {
	" atendimento ", " atendente ", " atendentes ", " suporte ", " sac ", " loja ", " tecnico ", " vendedor ",
	" empresa ", " voces ", " atenderam ", " atendeu ", " me trataram ",
};

/* Verbs that end something: a plan or service named right after one is what the customer
 * wants to end ("cancelar o plano", "tira o ponto extra": its sales words count nothing); a
 * charge named right after one is a bill to fix ("tirar os juros", "cancelar a cobrança"). */
static const char *const rules_ending_words[] = {
	" cancelar ", " cancela ", " cancelem ", " cancele ", " cancelamento ", " tirar ", " tira ", " tirem ",
	" remover ", " remove ", " encerrar ", " encerra ", " encerrem ", " encerre ", " desativar ", " desativa ",
	" desativem ", " desative ", " desistir ", " desligar ", " desliga ", " desliguem ", " desligue ",
	" suspender ", " suspende ", " trancar ", " tranca ",
};
/* The people who served the customer: one of them as the subject of a past-tense verb
 * ("o técnico chegou atrasado", "a atendente desligou", "o vendedor garantiu") tells how the
 * customer was treated, whatever the words after it. */
static const char *const rules_agent_words[] = {
	"tecnico", "tecnicos", "tecnica", "atendente", "atendentes", "vendedor", "vendedora", "supervisor",
	"supervisora", "consultor", "consultora", "instalador", "instaladores", "moca", "moco", "rapaz", "funcionario",
	"funcionaria", "gerente", "chat", "central", "pessoal", "loja", "entregador", "motoboy", "motorista",
	"instrutor", "instrutora", "professor", "professora", "recepcionista", "eletricista", "medico", "medica",
	"enfermeira", "enfermeiro", "corretor", "corretora",
};
/* Words that may stand between the agent and the verb ("o técnico nem veio", "me disse"). */
static const char *const rules_agent_fillers[] = {"me", "nao", "nem", "ja", "so", "ainda", "tambem", "que", "la",
						  "aqui", "de", "voces", "simplesmente", "nunca"};
static const char *const rules_past_verbs[] = {"veio", "vieram", "disse", "disseram", "fez", "fizeram", "deu", "deram", "pos", "trouxe", "quis", "teve"};
/* Between the agent and the verb, whose agent it is: "do atendimento", "da loja". */
static const char *const rules_agent_of[] = {"do", "da", "de", "dos", "das"};
/* Portability is a sale when the number comes to us, a cancellation when it leaves. */
static const char *const rules_to_us_words[] = {" pra voces", " para voces", " pra ca ", " para ca "};
/* Shortly after "cancelar" ("vou cancelar se continuar"), a condition: a threat. */
static const char *const rules_condition_words[] = {" se ", " caso "};
/* Before a formal complaint ("se não resolverem abro reclamação"), a condition: a threat. */
static const char *const rules_complaint_threat_words[] = {" se nao ", " senao ", " caso nao "};

/* Words that, shortly before "cancelar", make it a condition: a threat, not the request. */
static const char *const rules_threat_words[] = {" se ", " senao ", " caso ", " ou ", " ou entao "};
/* ... when the customer says they will do it ("vou cancelar", "cancelo", "a gente cancela")
 * or the condition is a failure ("se não resolverem"); "se cancelarem hoje", "confirma se
 * está cancelado" and "quanto pago se cancelar?" are the request itself. */
static const char *const rules_threat_subjects[] = {" vou ", " vamos ", " irei ", " iremos ", " eu ", " a gente ",
						    " ter que ", " teria que ", " vai ", " acabo ", " acabar "};
static const char *const rules_failure_conditions[] = {" se nao ", " senao ", " caso nao ", " se continuar ",
						       " se for ", " ou ", " se demorar", " se ninguem "};
static const char *const rules_cancel_questions[] = {" quanto ", " qual ", " quais ", " como ", " o que acontece ",
						     " tem multa ", " pago ", " pagar ", " confirmar ", " saber ",
						     " ver ", " verificar ", " confirma "};
/* The first person of a verb that ends something: said by the customer about the future. */
static const char *const rules_threat_forms[] = {"cancelo", "cancelarei", "cancelaria", "cancelamos", "encerro",
						 "saio", "desisto", "rescindo", "cancelariamos"};
/* "não quero desconto", "não queremos cancelar", "não mudei de plano": what follows is
 * refused or was never done, not asked for. */
static const char *const rules_refusals[] = {" nao quero ", " nao queremos ", " nao tenho interesse ",
					     " nao temos interesse ", " sem interesse ", " nao pretendo ",
					     " nao preciso de ", " nem ", " nao mudei ", " nao troquei ", " nao pedi ",
					     " nunca pedi ", " nao solicitei ", " nao fiz ", " nunca fiz "};

/* "não é urgente", "sem urgência": the word is there, the urgency is not. */
static const char *const rules_negations[] = {" nao e", " nao eh", " nada", " sem", " nao ha", " nao tem", NULL};
/* ... and "só chamadas de emergência" is a phone without signal, not an emergency. */
static const char *const rules_not_emergency[] = {" nao e", " nao eh", " nada", " sem", " nao ha", " nao tem",
						   " chamadas de", " chamada de", " ligacoes de", " ligacao de", NULL};
/* "protocolo falso" is a mistake of the agent, not a scam. */
static const char *const rules_not_fraud[] = {" protocolo", " alarme", NULL};
/* "plano de saúde" is an insurance, not a risk to anyone's health. */
static const char *const rules_not_health[] = {" plano de", " plano da", " planos de", " planos da", " agente de", NULL};
/* A health plan's customer names hospitals and health as what the plan covers, not a risk. */
static const char *const rules_health_plan_words[] = {" plano de saude", " planos de saude", " convenio", " plano odontologico"};

/* Critical phrases; the most serious reason found is reported. */
static const rules_critical_t rules_criticals[] = {
	{" depende do aparelho", REASON_HEALTH, NULL},
	{" depende de aparelho", REASON_HEALTH, NULL},
	{" dependente de aparelho", REASON_HEALTH, NULL},
	{" hospital", REASON_HEALTH, NULL},
	{" oxigenio", REASON_HEALTH, NULL},
	{" saude", REASON_HEALTH, rules_not_health},
	{" respirador", REASON_HEALTH, NULL},
	{" home care", REASON_HEALTH, NULL},
	{" homecare", REASON_HEALTH, NULL},
	{" ambulancia", REASON_HEALTH, NULL},
	{" marcapasso", REASON_HEALTH, NULL},
	{" marca passo", REASON_HEALTH, NULL},
	{" acamad", REASON_HEALTH, NULL},
	{" cardiac", REASON_HEALTH, NULL},
	{" dialise", REASON_HEALTH, NULL},
	{" vida ou morte", REASON_HEALTH, NULL},
	{" clonaram", REASON_FRAUD, NULL},
	{" clonad", REASON_FRAUD, NULL},
	{" clonagem", REASON_FRAUD, NULL},
	{" compra que nao fiz", REASON_FRAUD, NULL},
	{" compras que nao fiz", REASON_FRAUD, NULL},
	{" nao fiz essa compra", REASON_FRAUD, NULL},
	{" nao reconhec", REASON_FRAUD, NULL}, /* "não reconheço", "não reconhecido"; not "não foi reconhecido" */
	{" desconhecid", REASON_FRAUD, NULL},
	{" nao autorizei", REASON_FRAUD, NULL},
	{" fraude", REASON_FRAUD, NULL},
	{" golpe", REASON_FRAUD, NULL},
	{" hackearam", REASON_FRAUD, NULL},
	{" boleto falso", REASON_FRAUD, NULL},
	{" falso", REASON_FRAUD, rules_not_fraud},
	{" falsa", REASON_FRAUD, rules_not_fraud},
	{" sem eu saber", REASON_FRAUD, NULL},
	{" sem meu conhecimento", REASON_FRAUD, NULL},
	{" mensagem falsa", REASON_FRAUD, NULL},
	{" se passando por", REASON_FRAUD, NULL},
	{" sem autorizacao", REASON_FRAUD, NULL},
	{" invadiram minha conta", REASON_FRAUD, NULL},
	{" nunca contratei", REASON_FRAUD, NULL},
	{" alguem fez", REASON_FRAUD, NULL},
	{" alguem usou", REASON_FRAUD, NULL},
	{" usaram meu", REASON_FRAUD, NULL},
	{" link estranho", REASON_FRAUD, NULL},
	{" numero estranho", REASON_FRAUD, NULL},
	{" email estranho", REASON_FRAUD, NULL},
	{" site estranho", REASON_FRAUD, NULL},
	{" suspeit", REASON_FRAUD, NULL},
	{" pix pra outra", REASON_FRAUD, NULL},
	{" pix para outra", REASON_FRAUD, NULL},
	{" outro beneficiario", REASON_FRAUD, NULL},
	{" beneficiario diferente", REASON_FRAUD, NULL},
	{" usando meu", REASON_FRAUD, NULL},
	{" codigo do whatsapp", REASON_FRAUD, NULL},
	{" codigo de verificacao", REASON_FRAUD, NULL},
	{" trocaram meu chip", REASON_FRAUD, NULL},
	{" nao parece de voces", REASON_FRAUD, NULL},
	{" nao parece ser de voces", REASON_FRAUD, NULL},
	{" justica", REASON_LEGAL, NULL},
	{" procon", REASON_LEGAL, NULL},
	{" advogad", REASON_LEGAL, NULL},
	{" processar", REASON_LEGAL, NULL},
	{" processo contra", REASON_LEGAL, NULL},
	{" abrir processo", REASON_LEGAL, NULL},
	{" danos morais", REASON_LEGAL, NULL},
	{" juizado", REASON_LEGAL, NULL},
	{" pequenas causas", REASON_LEGAL, NULL},
	{" anatel", REASON_LEGAL, NULL},
	{" defensoria", REASON_LEGAL, NULL},
	{" defesa do consumidor", REASON_LEGAL, NULL},
	{" meus direitos", REASON_LEGAL, NULL},
	{" boletim de ocorrencia", REASON_LEGAL, NULL},
	{" delegacia", REASON_LEGAL, NULL},
	{" judicial", REASON_LEGAL, NULL},
	{" faisca", REASON_URGENCY, NULL},
	{" pegando fogo", REASON_URGENCY, NULL},
	{" incendio", REASON_URGENCY, NULL},
	{" levar choque", REASON_URGENCY, NULL},
	{" dando choque", REASON_URGENCY, NULL},
	{" fio desencapado", REASON_URGENCY, NULL},
	{" botao de socorro", REASON_HEALTH, NULL},
	{" botao do panico", REASON_HEALTH, NULL},
	{" dizendo que era", REASON_FRAUD, NULL},
	{" dizendo ser", REASON_FRAUD, NULL},
	{" se dizendo", REASON_FRAUD, NULL},
	{" passei o codigo", REASON_FRAUD, NULL},
	{" pediu o codigo", REASON_FRAUD, NULL},
	{" pediram o codigo", REASON_FRAUD, NULL},
	{" beneficiario e de", REASON_FRAUD, NULL},
	{" cnpj do beneficiario", REASON_FRAUD, NULL},
	{" e verdadeiro", REASON_FRAUD, NULL},
	{" e verdadeira", REASON_FRAUD, NULL},
	{" urgent", REASON_URGENCY, rules_negations}, /* urgente, urgentemente, urgentíssimo */
	{" urgencia", REASON_URGENCY, rules_negations},
	{" emergencia", REASON_URGENCY, rules_not_emergency},
	{" emergencial", REASON_URGENCY, rules_negations},
};

/* A threat or fraud report says something about the intent too, when nothing else does. */
static const rules_intent_t rules_reason_intent[REASON_COUNT] = {
	[REASON_HEALTH] = INTENT_OTHER,
	[REASON_FRAUD] = INTENT_BILLING,
	[REASON_LEGAL] = INTENT_COMPLAINT,
	[REASON_URGENCY] = INTENT_OTHER,
};

/* Whole messages that carry no request: answered with a greeting or closing hint. */
static const char *const rules_greeting_words[] = {"oi", "ola", "opa", "bom", "boa", "dia", "tarde", "noite",
						   "tudo", "bem", "e", "ai", "alo", "hello", "hi"};
static const char *const rules_ack_words[] = {"ok", "okay", "blz", "beleza", "valeu", "vlw", "obrigado",
					      "obrigada", "obg", "brigado", "sim", "nao", "certo", "entendi",
					      "ta", "perfeito", "otimo", "combinado", "aguardo", "show", "joia",
					      "tchau", "ate", "mais", "muito", "grato", "grata", "isso", "pode",
					      "ser", "s", "n", "top", "esta", "estou", "aguardando", "so", "ah",
					      "agora", "entao", "tranquilo", "fechado", "de", "nada", "por", "favor"};

static size_t rules_canonicalize(const char *norm, char *out, size_t cap);
static const char *rules_fix_typo(const char *w, size_t len, char *buf, size_t cap);
static int rules_edit_distance(const char *a, size_t la, const char *b, size_t lb, int max);
static const char *rules_last(const char *hay, const char *pattern);
static bool rules_word_before(const char *canon, const char *at, const char *const *words, size_t n, size_t window);
static bool rules_word_after(const char *from, const char *const *words, size_t n, size_t window);
static bool rules_agent_story(const char *padded);
static bool rules_cancel_threat(const char *padded, const char *at, const char *after);
static const char *rules_opening(const char *padded);
static double rules_unread_share(const char *padded, const char *matched);
static bool rules_critical_found(const char *padded, const rules_critical_t *c);
static bool rules_in(const char *w, size_t len, const char *const *list, size_t n);
static bool rules_only_words(const char *norm, const char *const *words, size_t n, const char *const *words2,
			     size_t n2, bool *saw_first);
static void rules_find_details(const char *raw, const char *padded, rules_details_t *d);
static void rules_number_before(const char *padded, const char *suffix, char *out);
static void rules_raw_after(const char *raw, const char *word, bool want_digit, char *out);
static void rules_render(const char *tmpl, const rules_details_t *d, char *out, size_t cap);
static const char *rules_detail(const rules_details_t *d, const char *name, size_t len);

const char *rules_intent_name(rules_intent_t intent)
{
	if ((unsigned)intent > INTENT_OTHER)
		return "other";
	return rules_intent_names[intent];
}

bool rules_intent_parse(const char *name, rules_intent_t *out)
{
	for (int i = 0; name && i <= INTENT_OTHER; i++) {
		if (strcmp(name, rules_intent_names[i]) == 0) {
			*out = (rules_intent_t)i;
			return true;
		}
	}
	return false;
}

static void rules_classify_text(const char *text, const char *domain, rules_result_t *out);

void rules_classify(const char *text, const char *domain, rules_result_t *out)
{
	size_t ml = strlen(RULES_VOICE_MARK);
	if (!text || strncmp(text, RULES_VOICE_MARK, ml) != 0) {
		rules_classify_text(text, domain, out);
		return;
	}
	const char *words = text + ml + strspn(text + ml, " \t\n");
	if (!*words) {
		memset(out, 0, sizeof(*out));
		out->intent = INTENT_OTHER;
		snprintf(out->text, sizeof(out->text), "O cliente mandou uma mensagem de voz: ouça o áudio no console antes "
			 "de responder e, se não conseguir ouvir, peça com gentileza que escreva o essencial.");
		return;
	}
	char hint[RULES_HINT_MAX];
	rules_classify_text(words, domain, out);
	snprintf(hint, sizeof(hint), "(Mensagem de voz, transcrita) %.440s", out->text);
	memcpy(out->text, hint, sizeof(out->text));
	out->text[sizeof(out->text) - 1] = '\0';
}

static void rules_classify_text(const char *text, const char *domain, rules_result_t *out)
{
	char norm[RULES_NORM_MAX + 1];
	char padded[RULES_CANON_MAX + 2];
	double score[INTENT_OTHER + 1] = {0};
	char matched[RULES_CANON_MAX + 2] = {0}; /* the bytes of padded a keyword read */
	const rules_keyword_t *best_kw[INTENT_OTHER + 1] = {0};
	rules_details_t details;
	int reason = REASON_COUNT;
	const char *hint;
	bool threat = false;

	memset(out, 0, sizeof(*out));
	size_t n = text_normalize(text, norm, sizeof(norm));
	size_t len = rules_canonicalize(norm, padded, sizeof(padded)); /* " w1 w2 … " */
	const char *norm_view = padded + 1; /* rewritten text + one trailing space */
	size_t words = 0;
	for (const char *p = padded; *p; p++)
		words += p[0] == ' ' && p[1] && p[1] != ' ';
	const char *opening = rules_opening(padded);

	for (size_t i = 0; i < sizeof(rules_keywords) / sizeof(rules_keywords[0]); i++) {
		const rules_keyword_t *kw = &rules_keywords[i];
		const char *at = rules_last(padded, kw->pattern);
		if (!at)
			continue;
		double w = kw->weight;
		if (words >= RULES_LONG_WORDS && len > 0)
			w *= 1.0 + RULES_LATE_BONUS * (double)(at - padded) / (double)len;
		bool request = rules_word_before(padded, at, rules_request_words,
						 sizeof(rules_request_words) / sizeof(rules_request_words[0]), 16) ||
			       (kw->intent == INTENT_CANCEL && at == opening); /* "cancela a linha": an order */
		bool object = (kw->intent == INTENT_SALES ? kw->weight > 0 : kw->intent == INTENT_BILLING && kw->weight >= 3) &&
			      rules_word_before(padded, at, rules_ending_words,
						sizeof(rules_ending_words) / sizeof(rules_ending_words[0]), RULES_OBJECT_WINDOW);
		rules_intent_t intent = kw->intent;
		const char *after = at + strlen(kw->pattern) - 1;
		if (kw->hint == H_PORTABILIDADE_SAIDA &&
		    rules_word_after(after, rules_to_us_words, sizeof(rules_to_us_words) / sizeof(rules_to_us_words[0]), 40))
			intent = INTENT_SALES;
		if (kw->weight > 0 && (intent == INTENT_SALES || intent == INTENT_CANCEL) &&
		    rules_word_before(padded, at, rules_refusals, sizeof(rules_refusals) / sizeof(rules_refusals[0]),
				      RULES_REFUSAL_WINDOW) &&
		    strncmp(at, " mais ", 6) != 0 &&
		    !rules_word_before(padded, at, (const char *const[]){" mais "}, 1, RULES_REFUSAL_WINDOW)) {
			w = 0;
		} else if (intent == INTENT_CANCEL && !request && rules_cancel_threat(padded, at, after)) {
			w = RULES_THREAT_WEIGHT;
			threat = true;
		} else if (kw->hint == H_RECLAMACAO_FORMAL && !request &&
			   rules_word_before(padded, at, rules_complaint_threat_words,
					     sizeof(rules_complaint_threat_words) / sizeof(rules_complaint_threat_words[0]),
					     60)) {
			w = RULES_THREAT_WEIGHT;
		} else if (object) {
			w = intent == INTENT_SALES ? 0 : w + RULES_REQUEST_BONUS;
		} else if (request) {
			w += RULES_REQUEST_BONUS;
		}
		score[intent] += w;
		if (kw->weight > 0)
			memset(matched + (at - padded), 1, strlen(kw->pattern));
		if (kw->hint && (!best_kw[kw->intent] || kw->weight > best_kw[kw->intent]->weight))
			best_kw[kw->intent] = kw;
	}
	bool health_plan = false;
	for (size_t i = 0; i < sizeof(rules_health_plan_words) / sizeof(rules_health_plan_words[0]); i++)
		health_plan = health_plan || strstr(padded, rules_health_plan_words[i]) != NULL;
	for (size_t i = 0; i < sizeof(rules_criticals) / sizeof(rules_criticals[0]); i++) {
		if (!rules_critical_found(padded, &rules_criticals[i]))
			continue;
		if (rules_criticals[i].reason == REASON_HEALTH && health_plan &&
		    (strcmp(rules_criticals[i].pattern, " hospital") == 0 || strcmp(rules_criticals[i].pattern, " saude") == 0))
			continue;
		if ((int)rules_criticals[i].reason < reason)
			reason = (int)rules_criticals[i].reason;
	}
	for (size_t i = 0; i < sizeof(rules_verdict_words) / sizeof(rules_verdict_words[0]); i++) {
		const char *at = rules_last(padded, rules_verdict_words[i]);
		if (!at)
			continue;
		if (rules_word_before(padded, at, rules_self_words, sizeof(rules_self_words) / sizeof(rules_self_words[0]), 12))
			continue; /* "sou meio ruim com isso": the customer judges themself */
		double w = RULES_VERDICT_WEIGHT;
		if (words >= RULES_LONG_WORDS && len > 0)
			w *= 1.0 + RULES_LATE_BONUS * (double)(at - padded) / (double)len;
		if (rules_word_before(padded, at, rules_treatment_words,
				      sizeof(rules_treatment_words) / sizeof(rules_treatment_words[0]), RULES_VERDICT_WINDOW))
			score[INTENT_COMPLAINT] += w;
		else if (rules_word_before(padded, at, rules_service_words,
					   sizeof(rules_service_words) / sizeof(rules_service_words[0]), RULES_VERDICT_WINDOW))
			score[INTENT_OUTAGE] += w;
	}
	if (rules_agent_story(padded))
		score[INTENT_COMPLAINT] += RULES_STORY_WEIGHT;
	if (reason != REASON_COUNT && rules_reason_intent[reason] != INTENT_OTHER)
		score[rules_reason_intent[reason]] += reason == REASON_FRAUD ? 3 : 1; /* a scam on the bill or card is billing */

	rules_intent_t dom = INTENT_OTHER;
	for (size_t i = 0; domain && i < sizeof(rules_domains) / sizeof(rules_domains[0]); i++)
		if (strcmp(domain, rules_domains[i].domain) == 0)
			dom = rules_domains[i].intent;

	double top = 0, second = 0;
	for (int i = 0; i <= INTENT_OTHER; i++) {
		if (score[i] > top) {
			second = top;
			top = score[i];
		} else if (score[i] > second) {
			second = score[i];
		}
	}

	rules_find_details(text ? text : "", padded, &details);
	bool greeting = false;
	if (n == 0 || len <= 1) {
		out->intent = INTENT_OTHER;
		out->confidence = 0.9;
		hint = H_EMPTY;
	} else if (rules_only_words(norm_view, rules_greeting_words,
				    sizeof(rules_greeting_words) / sizeof(rules_greeting_words[0]), rules_ack_words,
				    sizeof(rules_ack_words) / sizeof(rules_ack_words[0]), &greeting)) {
		out->intent = INTENT_OTHER;
		out->confidence = 0.95;
		hint = greeting ? H_GREETING : H_ACK;
	} else if (top > 0) {
		if (dom != INTENT_OTHER && score[dom] == top) {
			out->intent = dom;
		} else {
			out->intent = INTENT_OTHER;
			for (size_t i = 0; i < sizeof(rules_tie_order) / sizeof(rules_tie_order[0]); i++) {
				if (score[rules_tie_order[i]] == top) {
					out->intent = rules_tie_order[i];
					break;
				}
			}
		}
		/* sure when one intent clearly leads, was said strongly enough and the keywords
		 * read most of what the customer wrote */
		double strength = top >= 5.0 ? 1.0 : top / 5.0;
		double unread = rules_unread_share(padded, matched);
		out->confidence = (top - second) / top * strength *
				  (1.0 - RULES_UNREAD_PENALTY * (unread > RULES_UNREAD_FREE ? unread - RULES_UNREAD_FREE : 0));
		hint = best_kw[out->intent] ? best_kw[out->intent]->hint : rules_generic_hints[out->intent];
	} else {
		out->intent = dom;
		out->confidence = 0.2;
		hint = rules_generic_hints[dom];
	}

	if (reason != REASON_COUNT) {
		out->critical = true;
		out->critical_reason = rules_reason_names[reason];
		hint = (reason == REASON_URGENCY && out->intent == INTENT_OUTAGE) ? H_URGENT_OUTAGE
										  : rules_critical_hints[reason];
	}
	rules_render(hint, &details, out->text, sizeof(out->text));
	if (threat && out->intent != INTENT_CANCEL) {
		size_t used = strlen(out->text);
		if (used + sizeof(H_THREAT) < sizeof(out->text))
			memcpy(out->text + used, H_THREAT, sizeof(H_THREAT));
	}
}

size_t rules_cache_key(const char *text, char *out, size_t cap)
{
	static const char *const courtesy[] = {"oi", "ola", "opa", "bom", "boa", "dia", "tarde", "noite", "tudo",
					       "bem", "por", "favor", "obrigado", "obrigada", "desde", "ja", "entao",
					       "gente", "pessoal", "moca", "moco", "ai", "alo", "e", "ne", "ok"};
	static const char *const months[] = {"janeiro", "fevereiro", "marco", "abril", "maio", "junho", "julho",
					     "agosto", "setembro", "outubro", "novembro", "dezembro"};
	/* a name follows these; the phrase and the name go */
	static const char *const name_cues[] = {" meu nome e ", " aqui e o ", " aqui e a ", " aqui quem fala e ",
						" sou o ", " sou a ", " me chamo ", " falo com o ", " falo com a "};
	char norm[RULES_NORM_MAX + 1];
	char canon[RULES_CANON_MAX + 2];
	size_t o = 0;

	if (cap == 0)
		return 0;
	out[0] = '\0';
	text_normalize(text, norm, sizeof(norm));
	rules_canonicalize(norm, canon, sizeof(canon));
	for (size_t i = 0; i < sizeof(name_cues) / sizeof(name_cues[0]); i++) {
		for (char *at = strstr(canon, name_cues[i]); at; at = strstr(at, name_cues[i])) {
			size_t cl = strlen(name_cues[i]);
			size_t nl = strcspn(at + cl, " ");
			memset(at + 1, ' ', cl - 1 + nl); /* keeps the leading space: cues may follow */
		}
	}
	bool last_zero = false;
	for (const char *p = canon; *p;) {
		while (*p == ' ')
			p++;
		if (!*p)
			break;
		size_t len = strcspn(p, " ");
		const char *word = p;
		p += len;
		if (rules_in(word, len, courtesy, sizeof(courtesy) / sizeof(courtesy[0])))
			continue;
		if (len == 1 && word[0] == 'r' && *p && isdigit((unsigned char)p[1]))
			continue; /* "R$ 129" */
		const char *rep = NULL;
		size_t rl = len;
		if (strcspn(word, "0123456789") < len) {
			if (last_zero)
				continue;
			rep = "0";
			rl = 1;
		} else if (rules_in(word, len, months, sizeof(months) / sizeof(months[0]))) {
			rep = "mes";
			rl = 3;
		}
		last_zero = rep && rep[0] == '0';
		if (o + rl + 2 > cap)
			break;
		if (o)
			out[o++] = ' ';
		memcpy(out + o, rep ? rep : word, rl);
		o += rl;
		out[o] = '\0';
	}
	return o;
}

/* True when the len bytes at w are one of the n words of list. */
static bool rules_in(const char *w, size_t len, const char *const *list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strlen(list[i]) == len && memcmp(list[i], w, len) == 0)
			return true;
	return false;
}

/* Rewrites normalized text word by word into out as " w1 w2 … wn " (NUL-terminated):
 * letters repeated for emphasis squeezed ("muuuito", "oii"), slang expanded, "2a via"
 * read as "segunda via", typos of rules_vocabulary corrected. Returns the length written;
 * words that do not fit are dropped. */
static size_t rules_canonicalize(const char *norm, char *out, size_t cap)
{
	size_t o = 0;
	const char *p = norm;

	out[o++] = ' ';
	while (*p) {
		while (*p == ' ')
			p++;
		if (!*p)
			break;
		size_t wl = strcspn(p, " ");
		char w[64];
		size_t k = 0;
		for (size_t i = 0; i < wl && k + 1 < sizeof(w); i++) {
			/* three or more of a letter are one; a doubled last letter is one too */
			if (k >= 2 && p[i] == w[k - 1] && p[i] == w[k - 2] && isalpha((unsigned char)p[i]))
				continue;
			w[k++] = p[i];
		}
		if (k > 2 && w[k - 1] == w[k - 2] && isalpha((unsigned char)w[k - 1]))
			k--;
		w[k] = '\0';
		const char *next = p + wl;
		while (*next == ' ')
			next++;
		const char *rep = NULL;
		if ((strcmp(w, "2a") == 0 || strcmp(w, "2") == 0 || strcmp(w, "2o") == 0) && strncmp(next, "via", 3) == 0 &&
		    (next[3] == ' ' || next[3] == '\0'))
			rep = "segunda";
		for (size_t i = 0; !rep && i < sizeof(rules_slang) / sizeof(rules_slang[0]); i++)
			if (strcmp(w, rules_slang[i].from) == 0)
				rep = rules_slang[i].to;
		char fixed[sizeof(w)];
		if (!rep)
			rep = rules_fix_typo(w, k, fixed, sizeof(fixed));
		if (!rep)
			rep = w;
		size_t rl = strlen(rep);
		if (o + rl + 2 >= cap)
			break;
		memcpy(out + o, rep, rl);
		o += rl;
		out[o++] = ' ';
		p += wl;
	}
	out[o] = '\0';
	return o;
}

/* The endings a verb of rules_vocabulary takes: a mistyped inflection ("canselo",
 * "reclamaro", "cancelem") is corrected on its stem and keeps its own ending. Longest first. */
static const char *const rules_verb_endings[] = {"aram", "ando", "arem", "ado", "ada", "ar", "er", "ir", "am",
						 "em", "ou", "ei", "o", "a", "e", ""};

/* The stem (5 letters or more) of a vocabulary verb ("cancelar": "cancel") and one of
 * rules_verb_endings, or NULL. */
static const char *rules_verb_stem(const char *v, size_t *stem_len)
{
	size_t vl = strlen(v);
	if (vl < 7 || v[vl - 1] != 'r' || !strchr("aei", v[vl - 2]))
		return NULL;
	*stem_len = vl - 2;
	return v;
}

/* True when w is a vocabulary verb rightly inflected: "reclame", "instalaram". */
static bool rules_verb_form(const char *w, size_t len)
{
	for (size_t i = 0; i < sizeof(rules_vocabulary) / sizeof(rules_vocabulary[0]); i++) {
		size_t sl;
		const char *v = rules_verb_stem(rules_vocabulary[i], &sl);
		if (!v || len < sl || memcmp(w, v, sl) != 0)
			continue;
		for (size_t e = 0; e < sizeof(rules_verb_endings) / sizeof(rules_verb_endings[0]); e++)
			if (strlen(rules_verb_endings[e]) == len - sl && memcmp(w + sl, rules_verb_endings[e], len - sl) == 0)
				return true;
	}
	return false;
}

/* The vocabulary word w is a typo of (one edit from 6 letters on, two from 10), or NULL
 * when w is fine, too short, holds a digit, is a vocabulary word with one letter more or
 * less at the end (an inflection) or is no such typo. Typos seldom hit the
 * first letter, so only words starting with the same one are tried. A verb's inflection
 * with a typo in its stem (5 letters or more) is rewritten in buf as the right stem and
 * the word's own ending: "canselá" reads "cancela". */
static const char *rules_fix_typo(const char *w, size_t len, char *buf, size_t cap)
{
	if (len < 6 || strpbrk(w, "0123456789"))
		return NULL;
	if (rules_verb_form(w, len))
		return NULL; /* "instalaram" is not a typo of "instalacao" */
	int max = len >= 10 ? 2 : 1;
	const char *best = NULL;
	int best_d = max + 1;
	for (size_t i = 0; i < sizeof(rules_vocabulary) / sizeof(rules_vocabulary[0]); i++) {
		const char *v = rules_vocabulary[i];
		size_t vl = strlen(v);
		if (v[0] != w[0] || (vl > len ? vl - len : len - vl) > (size_t)max)
			continue;
		if (vl == len && memcmp(v, w, len) == 0)
			return NULL;
		if ((len == vl + 1 && memcmp(v, w, vl) == 0) || (vl == len + 1 && memcmp(v, w, len) == 0))
			return NULL; /* an inflection, not a typo: "funcionar" is not "funciona", "reclama" not "reclamar" */
		int d = rules_edit_distance(w, len, v, vl, max);
		if (d < best_d) {
			best_d = d;
			best = v;
		}
	}
	if (best)
		return best;
	for (size_t i = 0; i < sizeof(rules_vocabulary) / sizeof(rules_vocabulary[0]); i++) {
		size_t sl;
		const char *v = rules_verb_stem(rules_vocabulary[i], &sl);
		if (!v || v[0] != w[0])
			continue;
		for (size_t e = 0; e < sizeof(rules_verb_endings) / sizeof(rules_verb_endings[0]); e++) {
			size_t el = strlen(rules_verb_endings[e]);
			if (len <= el || memcmp(w + len - el, rules_verb_endings[e], el) != 0)
				continue;
			size_t wsl = len - el;
			if (wsl + 1 < sl || wsl > sl + 1 || (wsl == sl && memcmp(w, v, sl) == 0))
				continue;
			if (rules_edit_distance(w, wsl, v, sl, 1) == 1 && sl + el < cap) {
				memcpy(buf, v, sl);
				memcpy(buf + sl, w + wsl, el);
				buf[sl + el] = '\0';
				return buf;
			}
		}
	}
	return NULL;
}

/* Optimal string alignment distance (insertions, deletions, substitutions, adjacent
 * transpositions) between two words of at most 63 bytes; any value > max means "far". */
static int rules_edit_distance(const char *a, size_t la, const char *b, size_t lb, int max)
{
	int d[64][64];
	if (la >= 64 || lb >= 64)
		return max + 1;
	for (size_t i = 0; i <= la; i++)
		d[i][0] = (int)i;
	for (size_t j = 0; j <= lb; j++)
		d[0][j] = (int)j;
	for (size_t i = 1; i <= la; i++) {
		int row_min = max + 1;
		for (size_t j = 1; j <= lb; j++) {
			int cost = a[i - 1] != b[j - 1];
			int v = d[i - 1][j] + 1;
			if (d[i][j - 1] + 1 < v)
				v = d[i][j - 1] + 1;
			if (d[i - 1][j - 1] + cost < v)
				v = d[i - 1][j - 1] + cost;
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && d[i - 2][j - 2] + 1 < v)
				v = d[i - 2][j - 2] + 1;
			d[i][j] = v;
			if (v < row_min)
				row_min = v;
		}
		if (row_min > max)
			return max + 1;
	}
	return d[la][lb];
}

/* The last occurrence of pattern in hay, or NULL. */
static const char *rules_last(const char *hay, const char *pattern)
{
	const char *last = NULL;
	for (const char *at = strstr(hay, pattern); at; at = strstr(at + 1, pattern))
		last = at;
	return last;
}

/* True when one of words (each " word ") ends right at at, or within window bytes
 * before it, in canon. */
static bool rules_word_before(const char *canon, const char *at, const char *const *words, size_t n, size_t window)
{
	const char *from = (size_t)(at - canon) > window ? at - window : canon;
	for (size_t i = 0; i < n; i++) {
		size_t wl = strlen(words[i]);
		for (const char *q = strstr(from, words[i]); q && q < at; q = strstr(q + 1, words[i]))
			if (q + wl - 1 <= at)
				return true;
	}
	return false;
}

/* The share (0..1) of the content words of padded (4 letters or more, no digit, not a
 * function word) that no keyword read: a message the table mostly does not know is one
 * whose intent the rules may have missed, however clear the few words they saw. */
static double rules_unread_share(const char *padded, const char *matched)
{
	static const char *const function_words[] = {
		"para", "pelo", "pela", "esta", "estou", "estava", "voce", "voces", "isso", "esse", "essa", "este",
		"aqui", "tudo", "como", "quando", "porque", "mais", "muito", "minha", "meus", "minhas", "desde",
		"ainda", "entao", "sobre", "mesmo", "agora", "hoje", "ontem", "tambem", "queria", "quero", "gostaria",
		"preciso", "obrigado", "obrigada", "favor", "tarde", "noite", "nada", "algum", "alguma", "qual",
		"quais", "onde", "depois", "antes", "sempre", "nunca", "essas", "esses", "dele", "dela",
	};
	int content = 0, unread = 0;
	for (const char *p = padded; *p;) {
		while (*p == ' ')
			p++;
		size_t len = strcspn(p, " ");
		if (!len)
			break;
		if (len >= 4 && !memchr(p, '0', len) && strcspn(p, "0123456789") >= len &&
		    !rules_in(p, len, function_words, sizeof(function_words) / sizeof(function_words[0]))) {
			content++;
			unread += memchr(matched + (p - padded), 1, len) == NULL;
		}
		p += len;
	}
	return content ? (double)unread / content : 0.0;
}

/* The space before the first word of padded that is not a greeting or a courtesy ("oi, boa
 * tarde, por favor, cancela…"): where an order opens. */
static const char *rules_opening(const char *padded)
{
	static const char *const courtesy[] = {"oi", "ola", "opa", "bom", "boa", "dia", "tarde", "noite", "por",
					       "favor", "gente", "pessoal", "moca", "moco", "ei", "e", "ai", "alo"};
	const char *p = padded;
	while (*p == ' ' && p[1]) {
		size_t len = strcspn(p + 1, " ");
		if (!len || !rules_in(p + 1, len, courtesy, sizeof(courtesy) / sizeof(courtesy[0])))
			break;
		p += 1 + len;
	}
	return p;
}

/* True when the cancel keyword at at (ending at after) is a threat: a condition before it
 * (or right after it) and the customer as the one who will end the contract, or a failure
 * as the condition; never when the company is the subject ("se cancelarem hoje") or the
 * condition is a question ("quanto pago se cancelar?", "confirma se está cancelado"). */
static bool rules_cancel_threat(const char *padded, const char *at, const char *after)
{
	const char *word = at + 1;
	size_t wl = strcspn(word, " ");
	if (wl > 3 && (memcmp(word + wl - 2, "em", 2) == 0 || memcmp(word + wl - 3, "ram", 3) == 0))
		return false; /* cancelem, cancelarem, cancelaram: the company's act */
	if (rules_word_before(padded, at, rules_cancel_questions,
			      sizeof(rules_cancel_questions) / sizeof(rules_cancel_questions[0]), 40))
		return false;
	bool first_person = rules_in(word, wl, rules_threat_forms, sizeof(rules_threat_forms) / sizeof(rules_threat_forms[0])) ||
			    rules_word_before(padded, at, rules_threat_subjects,
					      sizeof(rules_threat_subjects) / sizeof(rules_threat_subjects[0]), 14);
	if (rules_word_before(padded, at, rules_threat_words, sizeof(rules_threat_words) / sizeof(rules_threat_words[0]),
			      60) &&
	    (first_person || rules_word_before(padded, at, rules_failure_conditions,
					       sizeof(rules_failure_conditions) / sizeof(rules_failure_conditions[0]), 60)))
		return true;
	return first_person && strncmp(word, "cancel", 6) == 0 &&
	       rules_word_after(after, rules_condition_words,
				sizeof(rules_condition_words) / sizeof(rules_condition_words[0]), 12);
}

/* True when one of words (each " word ") starts within window bytes from from. */
static bool rules_word_after(const char *from, const char *const *words, size_t n, size_t window)
{
	for (size_t i = 0; i < n; i++) {
		const char *q = strstr(from, words[i]);
		if (q && (size_t)(q - from) <= window)
			return true;
	}
	return false;
}

/* True when a word ends like a past-tense verb ("chegou", "prometeu", "sumiu", "mandaram")
 * or is one of the irregular ones. */
static bool rules_past_tense(const char *w, size_t len)
{
	static const char *const endings[] = {"ou", "eu", "iu", "aram", "eram", "iram"};
	if (rules_in(w, len, rules_past_verbs, sizeof(rules_past_verbs) / sizeof(rules_past_verbs[0])))
		return true;
	for (size_t i = 0; len >= 4 && i < sizeof(endings) / sizeof(endings[0]); i++) {
		size_t el = strlen(endings[i]);
		if (len > el + 1 && memcmp(w + len - el, endings[i], el) == 0)
			return true;
	}
	return false;
}

/* True when one of rules_agent_words is followed (past a few fillers) by a past-tense
 * verb: the message tells what the people who served the customer did. */
static bool rules_agent_story(const char *padded)
{
	for (const char *p = padded; *p;) {
		while (*p == ' ')
			p++;
		size_t len = strcspn(p, " ");
		if (!len)
			break;
		bool agent = rules_in(p, len, rules_agent_words, sizeof(rules_agent_words) / sizeof(rules_agent_words[0]));
		p += len;
		if (!agent)
			continue;
		int complement = 0;
		for (const char *q = p; *q;) {
			while (*q == ' ')
				q++;
			size_t ql = strcspn(q, " ");
			if (!ql)
				break;
			if (rules_past_tense(q, ql))
				return true;
			if (rules_in(q, ql, rules_agent_of, sizeof(rules_agent_of) / sizeof(rules_agent_of[0])) && complement < 2) {
				/* "a enfermeira do atendimento domiciliar chegou…": whose agent, then the verb */
				complement++;
				q += ql;
				while (*q == ' ')
					q++;
				q += strcspn(q, " ");
				continue;
			}
			if (!rules_in(q, ql, rules_agent_fillers, sizeof(rules_agent_fillers) / sizeof(rules_agent_fillers[0])))
				break;
			q += ql;
		}
	}
	return false;
}

/* True when the phrase occurs at least once not right after one of its not_after words. */
static bool rules_critical_found(const char *padded, const rules_critical_t *c)
{
	for (const char *at = strstr(padded, c->pattern); at; at = strstr(at + 1, c->pattern)) {
		bool excluded = false;
		for (const char *const *w = c->not_after; w && *w && !excluded; w++) {
			size_t len = strlen(*w);
			excluded = (size_t)(at - padded) >= len && memcmp(at - len, *w, len) == 0;
		}
		if (!excluded)
			return true;
	}
	return false;
}

/* True when every word of norm is in one of the two lists; *saw_first tells whether a
 * word of the first list appeared (a greeting, as opposed to a mere acknowledgement). */
static bool rules_only_words(const char *norm, const char *const *words, size_t n, const char *const *words2,
			     size_t n2, bool *saw_first)
{
	const char *p = norm;
	bool any = false;

	*saw_first = false;
	while (*p) {
		while (*p == ' ')
			p++;
		if (!*p)
			break;
		size_t len = strcspn(p, " ");
		bool found = false;
		for (size_t i = 0; i < n && !found; i++) {
			if (strlen(words[i]) == len && memcmp(p, words[i], len) == 0) {
				found = true;
				*saw_first = true;
			}
		}
		for (size_t i = 0; i < n2 && !found; i++)
			found = strlen(words2[i]) == len && memcmp(p, words2[i], len) == 0;
		if (!found) /* laughter: "kkkk", "hahaha", "rsrs" */
			found = strspn(p, "k") >= len || strspn(p, "ha") >= len || strspn(p, "rs") >= len;
		if (!found)
			return false;
		any = true;
		p += len;
	}
	return any;
}

static void rules_find_details(const char *raw, const char *padded, rules_details_t *d)
{
	static const char *const months[][2] = {
		{" janeiro ", "janeiro"}, {" fevereiro ", "fevereiro"}, {" marco ", "março"},   {" abril ", "abril"},
		{" maio ", "maio"},       {" junho ", "junho"},         {" julho ", "julho"},   {" agosto ", "agosto"},
		{" setembro ", "setembro"}, {" outubro ", "outubro"},   {" novembro ", "novembro"},
		{" dezembro ", "dezembro"},
	};

	memset(d, 0, sizeof(*d));

	/* Amount: "R$ 129,00", "r$129", "R$ 1.299,90" — kept as written, prefixed "R$ ". */
	for (const char *p = raw; *p; p++) {
		if ((p[0] == 'R' || p[0] == 'r') && p[1] == '$') {
			const char *q = p + 2;
			while (*q == ' ')
				q++;
			size_t len = strspn(q, "0123456789.,");
			while (len > 0 && (q[len - 1] == '.' || q[len - 1] == ','))
				len--;
			if (len > 0 && len < RULES_DETAIL_MAX - 4 && isdigit((unsigned char)q[0])) {
				snprintf(d->valor, sizeof(d->valor), "R$ %.*s", (int)len, q);
				break;
			}
		}
	}
	rules_raw_after(raw, "protocolo", true, d->protocolo);
	rules_raw_after(raw, "bairro", false, d->bairro);
	rules_number_before(padded, " mega ", d->mega);
	if (!d->mega[0])
		rules_number_before(padded, " megas ", d->mega);
	rules_number_before(padded, " dias ", d->dias);
	rules_number_before(padded, " vezes ", d->vezes);
	for (size_t i = 0; i < sizeof(months) / sizeof(months[0]); i++) {
		if (strstr(padded, months[i][0])) {
			snprintf(d->mes, sizeof(d->mes), "%s", months[i][1]);
			break;
		}
	}
}

/* Copies the number right before suffix in the padded normalized text ("10" for
 * " 10 dias "), if any; numbers of more than 6 digits are not speeds or day counts. */
static void rules_number_before(const char *padded, const char *suffix, char *out)
{
	for (const char *at = strstr(padded, suffix); at; at = strstr(at + 1, suffix)) {
		const char *start = at;
		while (start > padded && isdigit((unsigned char)start[-1]))
			start--;
		size_t len = (size_t)(at - start);
		if (len > 0 && len <= 6 && start > padded && start[-1] == ' ') {
			memcpy(out, start, len);
			out[len] = '\0';
			return;
		}
	}
}

/* Copies the words after word (ASCII, any case) in the raw text, as the customer wrote
 * them: a protocol id ([A-Za-z0-9./-], must hold a digit) or a neighbourhood name (up to
 * the first punctuation). Skips "nº", ":", "#", "de/do/da". Leaves out empty when absent. */
static void rules_raw_after(const char *raw, const char *word, bool want_digit, char *out)
{
	size_t wl = strlen(word);
	for (const char *p = raw; *p; p++) {
		if (strncasecmp(p, word, wl) != 0 || (p > raw && isalnum((unsigned char)p[-1])) ||
		    isalnum((unsigned char)p[wl]))
			continue;
		const char *q = p + wl;
		for (;;) {
			if (*q == ' ' || *q == ':' || *q == '#' || *q == '.')
				q++;
			else if (strncmp(q, "nº", 3) == 0 || strncmp(q, "n°", 3) == 0)
				q += 3;
			else if ((strncasecmp(q, "de ", 3) == 0 || strncasecmp(q, "do ", 3) == 0 ||
				  strncasecmp(q, "da ", 3) == 0) && !want_digit)
				q += 3;
			else
				break;
		}
		size_t len = 0;
		bool digit = false;
		if (want_digit) {
			while (isalnum((unsigned char)q[len]) || q[len] == '-' || q[len] == '/' || q[len] == '.') {
				digit = digit || isdigit((unsigned char)q[len]);
				len++;
			}
			while (len > 0 && (q[len - 1] == '.' || q[len - 1] == '-' || q[len - 1] == '/'))
				len--;
			if (!digit)
				continue;
		} else {
			if (!isalpha((unsigned char)q[0]) && !((unsigned char)q[0] >= 0xC3 && (unsigned char)q[0] <= 0xC5))
				continue;
			len = strcspn(q, "?!.,;:()\"\n\r\t");
			while (len > 0 && q[len - 1] == ' ')
				len--;
		}
		if (len == 0)
			continue;
		if (len >= RULES_DETAIL_MAX) {
			/* Too long to be a name or an id; cut at a code point boundary. */
			len = RULES_DETAIL_MAX - 1;
			while (len > 0 && ((unsigned char)q[len] & 0xC0) == 0x80)
				len--;
			if (want_digit)
				continue;
		}
		memcpy(out, q, len);
		out[len] = '\0';
		return;
	}
}

/* Expands {name} from d and keeps a [bracketed part] only if every {name} in it is known.
 * Truncates at cap, on a code point boundary. */
static void rules_render(const char *tmpl, const rules_details_t *d, char *out, size_t cap)
{
	size_t o = 0;
	bool skipping = false;

	for (const char *p = tmpl; *p && o + 1 < cap; p++) {
		if (*p == '[') {
			/* Look ahead: skip the part when one of its details is missing. */
			skipping = false;
			for (const char *q = p + 1; *q && *q != ']'; q++) {
				if (*q == '{') {
					size_t len = strcspn(q + 1, "}");
					const char *v = rules_detail(d, q + 1, len);
					if (!v || !*v)
						skipping = true;
				}
			}
			continue;
		}
		if (*p == ']') {
			skipping = false;
			continue;
		}
		if (skipping)
			continue;
		if (*p == '{') {
			size_t len = strcspn(p + 1, "}");
			const char *v = rules_detail(d, p + 1, len);
			for (; v && *v && o + 1 < cap; v++)
				out[o++] = *v;
			p += len + (p[len + 1] == '}' ? 1 : 0);
			continue;
		}
		out[o++] = *p;
	}
	if (o + 1 >= cap) {
		/* Cut, maybe inside a multi-byte character: drop it if its bytes are not all there. */
		size_t lead = o;
		while (lead > 0 && ((unsigned char)out[lead - 1] & 0xC0) == 0x80)
			lead--;
		if (lead > 0 && (unsigned char)out[lead - 1] >= 0xC0) {
			unsigned char b = (unsigned char)out[lead - 1];
			size_t want = b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : 2;
			if (o - (lead - 1) < want)
				o = lead - 1;
		}
	}
	out[o] = '\0';
}

static const char *rules_detail(const rules_details_t *d, const char *name, size_t len)
{
	static const struct {
		const char *name;
		size_t offset;
	} fields[] = {
		{"valor", offsetof(rules_details_t, valor)}, {"protocolo", offsetof(rules_details_t, protocolo)},
		{"bairro", offsetof(rules_details_t, bairro)}, {"mega", offsetof(rules_details_t, mega)},
		{"mes", offsetof(rules_details_t, mes)},     {"dias", offsetof(rules_details_t, dias)},
		{"vezes", offsetof(rules_details_t, vezes)},
	};
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
		if (strlen(fields[i].name) == len && memcmp(fields[i].name, name, len) == 0)
			return (const char *)d + fields[i].offset;
	return NULL;
}
